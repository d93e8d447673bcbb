// Vite bundles imported CSS into a file of its own.
declare module "*.css";
