// In-page navigation between the room list and a room (the server answers every console path
// with the same page).

export const BASE = "/console/";

export function currentRoute(): string | null {
  const rest = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "";
  const m = /^rooms\/([A-Za-z0-9_-]{1,64})\/?$/.exec(rest);
  return m ? m[1] : null;
}

export function navigate(room: string | null) {
  history.pushState(null, "", room ? `${BASE}rooms/${room}` : BASE);
  dispatchEvent(new PopStateEvent("popstate"));
}
