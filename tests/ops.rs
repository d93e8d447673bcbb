//! Deployment files checked against the engine they deploy (no kubeconform or hadolint in
//! Debian 12, so these are structural checks against the real thing):
//! - `ops/runtime-packages.txt` provides every shared library the binary links and every
//!   GStreamer plugin the engine makes elements from (Debian's own dependency data);
//! - `ops/Containerfile` builds from Debian 12 a non-root runtime stage of those packages
//!   that serves on the engine's default ports (and is built where a container daemon runs);
//! - `ops/k8s/*.yaml` are well-formed objects whose probes, ports, selectors, user and
//!   settings are the engine's (probes answered by a real server, settings loaded by the real
//!   configuration loader);
//! - the Grafana dashboard and the Prometheus alert rules name only metrics and labels a real
//!   server with a live room exports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gst::prelude::*;
use serde_json::{Value, json};
use showmix_tests::server::{Server, wait_for};
use showmix_tests::{showmix_bin, workspace_root};

fn ops(path: &str) -> PathBuf {
    workspace_root().join("ops").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Package names in a list file (one per line, `#` comments).
fn package_list(path: &Path) -> Vec<String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The packages `pkgs` bring, with their dependencies, as apt resolves them here (Debian 12),
/// plus the `required` packages every Debian image (debian:12-slim included) has.
fn installed_closure(pkgs: &[String]) -> BTreeSet<String> {
    let deps = stdout(
        Command::new("apt-cache")
            .args([
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(pkgs),
    );
    let mut set: BTreeSet<String> = deps
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('<'))
        .map(|l| l.trim().trim_end_matches(":amd64").to_owned())
        .collect();
    let base = stdout(Command::new("dpkg-query").args(["-W", "-f", "${Package} ${Priority}\\n"]));
    set.extend(
        base.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, p)| *p == "required")
            .map(|(n, _)| n.to_owned()),
    );
    set
}

/// The Debian package that owns each of `paths` (under either name Debian 12's merged /usr
/// gives a file), from one `dpkg -S`.
fn owners(paths: &[PathBuf]) -> HashMap<PathBuf, String> {
    let aliases = |p: &PathBuf| -> Vec<String> {
        let resolved = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let mut names = Vec::new();
        for q in [p.clone(), resolved] {
            let s = q.display().to_string();
            match s.strip_prefix("/usr") {
                Some(rest) => names.push(rest.to_owned()),
                None => names.push(format!("/usr{s}")),
            }
            names.push(s);
        }
        names
    };
    let all: BTreeSet<String> = paths.iter().flat_map(aliases).collect();
    // Exits 1 when some alias is nobody's; the others are still listed.
    let out = Command::new("dpkg")
        .arg("-S")
        .args(&all)
        .output()
        .expect("dpkg");
    let mut by_path: HashMap<String, String> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((pkgs, path)) = line.split_once(": ") {
            let pkg = pkgs.split(',').next().unwrap_or_default();
            by_path.insert(
                path.trim().to_owned(),
                pkg.split(':').next().unwrap().trim().to_owned(),
            );
        }
    }
    paths
        .iter()
        .map(|p| {
            let pkg = aliases(p)
                .iter()
                .find_map(|a| by_path.get(a).cloned())
                .unwrap_or_else(|| panic!("no Debian package owns {}", p.display()));
            (p.clone(), pkg)
        })
        .collect()
}

/// Element factories the engine makes (`make("…")` in engine/src).
fn engine_factories() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![workspace_root().join("engine/src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = read(&p);
                for part in text.split("make(\"").skip(1) {
                    if let Some(name) = part.split('"').next()
                        && !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        out.insert(name.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn runtime_packages_provide_every_library_and_plugin_the_engine_uses() {
    let runtime = package_list(&ops("runtime-packages.txt"));
    let closure = installed_closure(&runtime);
    for p in &runtime {
        assert!(
            !p.ends_with("-dev"),
            "{p}: a -dev package in the runtime image"
        );
    }
    // Shared libraries of the binary.
    let ldd = stdout(Command::new("ldd").arg(showmix_bin()));
    let libs: Vec<PathBuf> = ldd
        .lines()
        .filter_map(|line| {
            line.split("=>")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect();
    assert!(
        libs.len() > 20,
        "ldd listed {} libraries:\n{ldd}",
        libs.len()
    );
    for (path, pkg) in owners(&libs) {
        assert!(
            closure.contains(&pkg),
            "{} comes from {pkg}, which ops/runtime-packages.txt does not bring",
            path.display()
        );
    }
    // GStreamer plugins of every element the engine makes (the ones compiled into showmix
    // have no plugin file of their own), and webrtcbin's ICE elements, which live apart.
    showmix::init().unwrap();
    let mut factories = engine_factories();
    assert!(
        factories.contains("x264enc") && factories.contains("webrtcbin"),
        "{factories:?}"
    );
    factories.insert("nicesrc".into());
    let mut files: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for f in &factories {
        let factory = gst::ElementFactory::find(f).unwrap_or_else(|| panic!("no element {f}"));
        let Some(file) = factory.plugin().and_then(|p| p.filename()) else {
            continue;
        };
        if file == showmix_bin() || file.starts_with(workspace_root()) {
            continue;
        }
        files.entry(file).or_default().push(f.clone());
    }
    let plugin_files: Vec<PathBuf> = files.keys().cloned().collect();
    for (file, pkg) in owners(&plugin_files) {
        assert!(
            closure.contains(&pkg),
            "elements {:?} are in {} from {pkg}, which ops/runtime-packages.txt does not bring",
            files[&file],
            file.display()
        );
    }
}

/// `(instruction, arguments)` of each Containerfile line, continuations joined, per stage.
fn containerfile_stages() -> Vec<(String, Vec<(String, String)>)> {
    let text = read(&ops("Containerfile")).replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (ins, args) = line.split_once(' ').unwrap_or((line, ""));
        let ins = ins.to_ascii_uppercase();
        if ins == "FROM" {
            stages.push((args.to_owned(), Vec::new()));
        } else {
            stages
                .last_mut()
                .expect("FROM first")
                .1
                .push((ins, args.to_owned()));
        }
    }
    stages
}

fn docker_runs() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_containerfile_builds_a_non_root_debian_runtime_on_the_engines_ports() {
    let stages = containerfile_stages();
    assert_eq!(stages.len(), 2, "a build and a runtime stage: {stages:?}");
    assert!(
        stages[0].0.starts_with("node:20-bookworm AS build"),
        "{}",
        stages[0].0
    );
    let (from, runtime) = &stages[1];
    assert_eq!(from, "debian:12-slim AS runtime");
    let get = |ins: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(i, _)| i == ins)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    // Exactly the runtime package list, from Debian, no recommends.
    let run = get("RUN").join(" ");
    assert!(run.contains("/tmp/runtime-packages.txt"), "{run}");
    assert!(run.contains("--no-install-recommends"), "{run}");
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.contains("ops/runtime-packages.txt"))
    );
    assert!(
        get("COPY").iter().any(|c| c.starts_with("--from=build ")),
        "the binary comes from the build stage"
    );
    // A non-root numeric user (Kubernetes' runAsNonRoot needs a number to check).
    let user = get("USER");
    assert_eq!(user.len(), 1, "{user:?}");
    let uid: u32 = user[0]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0);
    assert!(run.contains(&format!("--uid {uid}")), "{run}");
    // The engine's default ports, and the settings the image gives are real ones.
    let d = showmix::config::Config::default();
    let port = |a: &str| a.rsplit(':').next().unwrap().to_owned();
    let expose = get("EXPOSE").join(" ");
    for p in [
        format!("{}/tcp", d.listen.port()),
        format!("{}/tcp", port(&d.rtmp_listen)),
        format!("{}/udp", port(&d.srt_listen)),
    ] {
        assert!(
            expose.split(' ').any(|e| e == p),
            "EXPOSE {expose} lacks {p}"
        );
    }
    let env: HashMap<String, String> = get("ENV")
        .join(" ")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with("SHOWMIX_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(env.contains_key("SHOWMIX_LISTEN"), "{env:?}");
    check_settings(&env);
    assert_eq!(get("STOPSIGNAL"), ["SIGTERM"]);
    assert_eq!(
        get("ENTRYPOINT"),
        [r#"["/usr/local/bin/showmix", "serve"]"#]
    );
    // The build context leaves the build outputs out.
    let ignore = read(&workspace_root().join(".dockerignore"));
    for p in ["target", "**/node_modules", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == p),
            ".dockerignore lacks {p}"
        );
    }
    // Where a container daemon answers, build the image and run it.
    if docker_runs() {
        let root = workspace_root();
        let st = Command::new("docker")
            .args([
                "build",
                "-f",
                "ops/Containerfile",
                "-t",
                "showmix-ops-test",
                ".",
            ])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "docker build failed");
        let out = stdout(Command::new("docker").args([
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/showmix",
            "showmix-ops-test",
            "presets",
            "list",
        ]));
        assert!(out.contains("showroom-720p"), "{out}");
    } else {
        eprintln!(
            "no container daemon answers `docker info`: the Containerfile was checked, not built"
        );
    }
}

/// `SHOWMIX_*` settings as a deployment gives them: each one the configuration reads, and the
/// set accepted by the real loader (with a token, as off loopback).
fn check_settings(env: &HashMap<String, String>) {
    let config_src = read(&workspace_root().join("engine/src/config.rs"));
    for k in env.keys() {
        assert!(k.starts_with("SHOWMIX_"), "{k}");
        assert!(
            config_src.contains(&format!("\"{k}\"")),
            "{k} is not a showmix setting"
        );
    }
    let mut env = env.clone();
    env.entry("SHOWMIX_API_TOKEN".into())
        .or_insert_with(|| "0123456789abcdef".into());
    let dir = tempfile::tempdir().unwrap();
    if let Some(d) = env.get_mut("SHOWMIX_DATA_DIR") {
        *d = dir.path().join("data").display().to_string();
    }
    showmix::config::Config::load(None, &env, &showmix::config::Flags::default())
        .unwrap_or_else(|e| panic!("the loader refuses {env:?}: {e}"));
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v = serde_yaml::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn the_kubernetes_manifests_match_the_engine() {
    let dir = ops("k8s");
    let mut docs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "yaml") {
            docs.extend(yaml_docs(&e.path()));
        }
    }
    let known: BTreeMap<&str, &str> = [
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
        ("PodDisruptionBudget", "policy/v1"),
    ]
    .into();
    for d in &docs {
        let kind = d["kind"].as_str().expect("kind");
        assert_eq!(
            known.get(kind).copied(),
            d["apiVersion"].as_str(),
            "{kind}: apiVersion {}",
            d["apiVersion"]
        );
        assert!(d["metadata"]["name"].is_string(), "{d}");
    }
    let of = |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
    let deploy = of("Deployment");
    assert_eq!(deploy.len(), 1);
    let dep = deploy[0];
    let pod = &dep["spec"]["template"];
    let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
    let matches = |sel: &Value| {
        let sel = sel.as_object().expect("selector");
        !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(matches(&dep["spec"]["selector"]["matchLabels"]));
    let c = &pod["spec"]["containers"][0];
    // Ports: the engine's defaults, by name.
    let d = showmix::config::Config::default();
    let port = |a: &str| a.rsplit(':').next().unwrap().parse::<u64>().unwrap();
    let ports: BTreeMap<String, (u64, String)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                (
                    p["containerPort"].as_u64().unwrap(),
                    p["protocol"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(ports["http"], (u64::from(d.listen.port()), "TCP".into()));
    assert_eq!(ports["rtmp"], (port(&d.rtmp_listen), "TCP".into()));
    assert_eq!(ports["srt"], (port(&d.srt_listen), "UDP".into()));
    // Services select the pod and point at its named ports with the same protocols.
    for svc in of("Service") {
        assert!(matches(&svc["spec"]["selector"]), "{svc}");
        for p in svc["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_str().expect("named targetPort");
            let (_, proto) = ports
                .get(target)
                .unwrap_or_else(|| panic!("Service port {target} is no container port"));
            assert_eq!(p["protocol"].as_str(), Some(proto.as_str()), "{p}");
        }
    }
    for pdb in of("PodDisruptionBudget") {
        assert!(matches(&pdb["spec"]["selector"]["matchLabels"]), "{pdb}");
    }
    // The image's user, and requests sized (no CPU limit: throttling stalls encoders).
    let sc = &pod["spec"]["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    let stages = containerfile_stages();
    let user = stages[1]
        .1
        .iter()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.split(':').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(
        sc["runAsUser"].as_u64(),
        user,
        "pod user vs the image's USER"
    );
    let res = &c["resources"];
    assert!(res["requests"]["cpu"].is_string() && res["requests"]["memory"].is_string());
    assert!(
        res["limits"]["cpu"].is_null(),
        "a CPU limit throttles live encoders"
    );
    // Settings: each a real one, the set accepted by the loader.
    let env: HashMap<String, String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    check_settings(&env);
    let grace = env["SHOWMIX_SHUTDOWN_GRACE_MS"].parse::<u64>().unwrap();
    let period = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        period * 1000 > grace,
        "Kubernetes kills the pod ({period} s) before the engine's grace ({grace} ms) ends"
    );
    // The probes' paths answer on a real server.
    let s = Server::start(|_| {});
    for (probe, want) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], want, "{probe}");
        assert_eq!(get["port"], "http", "{probe}");
        let (st, _, _) = s.call("GET", want, None, None);
        assert_eq!(st, 200, "{want}");
    }
}

/// Metric names (`showmix_…`) in a PromQL expression, and the labels it names in matchers,
/// `by (…)` and `on (…)` clauses.
fn promql_refs(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            if word.starts_with("showmix_") {
                metrics.insert(word);
            } else if matches!(word.as_str(), "by" | "on" | "without" | "ignoring") {
                let rest: String = bytes[i..].iter().collect();
                if let Some(list) = rest.trim_start().strip_prefix('(')
                    && let Some((inside, _)) = list.split_once(')')
                {
                    labels.extend(inside.split(',').map(|l| l.trim().to_owned()));
                }
            }
        } else if c == '{' {
            let rest: String = bytes[i + 1..].iter().collect();
            let inside = rest.split('}').next().unwrap_or_default();
            for m in inside.split(',') {
                let name: String = m
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    labels.insert(name);
                }
            }
            i += 1 + inside.len();
        } else {
            i += 1;
        }
    }
    labels.remove("");
    (metrics, labels)
}

/// `{{ $labels.x }}` (alerts) and `{{x}}` (legends) label references in a template.
fn template_labels(text: &str) -> BTreeSet<String> {
    text.split("{{")
        .skip(1)
        .filter_map(|t| t.split("}}").next())
        .map(|t| t.trim().trim_start_matches("$labels.").to_owned())
        .filter(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !t.is_empty())
        .collect()
}

#[test]
fn the_dashboard_and_alerts_name_only_what_showmix_exports() {
    // A real server with a live room and a refused publisher: every family has samples.
    let s = Server::start(|_| {});
    let (st, v) = s.json(
        "POST",
        "/v1/rooms",
        Some(
            json!({"id": "ops", "layout": "pk", "ladder": "showroom-720p", "seats": [
            {"id": "a", "source": "test:smpte"}, {"id": "b", "source": "test:ball"}]}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    // A refused WHIP publisher (a seat that does not take one): the refusal families get
    // their labelled samples.
    let offer = showmix_tests::webrtc::gstreamer_offer().unwrap();
    let (st, _, _) = s.raw(
        "POST",
        "/whip/ops/a",
        &[
            ("content-type", "application/sdp"),
            ("authorization", "Bearer wrong"),
        ],
        Some(offer.into_bytes()),
    );
    assert!(st >= 400, "WHIP into a test seat answered {st}");
    let scrape = || String::from_utf8(s.call("GET", "/metrics", None, None).2).unwrap();
    wait_for("rung frame rates and refusals", || {
        let t = scrape();
        t.contains("showmix_rung_fps{") && t.contains("showmix_webrtc_refused_total{")
    });
    std::thread::sleep(Duration::from_secs(1));
    let text = scrape();
    // name -> its label names (from samples), families declared by # TYPE.
    let mut exported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            exported.entry(name.to_owned()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let labels = exported.entry(name).or_default();
            if let Some(inside) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) {
                for kv in inside.0.split(',') {
                    if let Some((k, _)) = kv.split_once('=') {
                        labels.insert(k.trim().to_owned());
                    }
                }
            }
        }
    }
    // Labels the scrape adds.
    let target_labels = ["instance", "job"];
    let check = |where_: &str, expr: &str, templates: &[&str]| {
        let (metrics, labels) = promql_refs(expr);
        let mut known: BTreeSet<String> = target_labels.iter().map(|s| s.to_string()).collect();
        for m in &metrics {
            let l = exported
                .get(m)
                .unwrap_or_else(|| panic!("{where_}: {m} is not a metric showmix exports"));
            known.extend(l.iter().cloned());
        }
        for l in &labels {
            assert!(
                known.contains(l) || l == "le",
                "{where_}: label {l} is on none of {metrics:?} ({expr})"
            );
        }
        for t in templates {
            for l in template_labels(t) {
                assert!(known.contains(&l), "{where_}: template label {l} ({t})");
            }
        }
        metrics.len()
    };
    // Alert rules.
    let rules = yaml_docs(&ops("prometheus/alerts.yaml"));
    let mut n = 0;
    for g in rules[0]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().expect("alert name");
            let expr = r["expr"].as_str().expect("expr");
            let summary = r["annotations"]["summary"].as_str().unwrap_or_default();
            let description = r["annotations"]["description"].as_str().unwrap_or_default();
            assert!(!summary.is_empty() && !description.is_empty(), "{name}");
            assert!(r["labels"]["severity"].is_string(), "{name}");
            if expr.contains("showmix_") {
                check(name, expr, &[summary, description]);
            }
            n += 1;
        }
    }
    assert!(n >= 5, "{n} alert rules");
    // Dashboard.
    let dash: Value =
        serde_json::from_str(&read(&ops("grafana/showmix-dashboard.json"))).expect("JSON");
    assert_eq!(dash["uid"], "showmix");
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        let title = p["title"].as_str().unwrap();
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let legend = t["legendFormat"].as_str().unwrap_or_default();
            assert!(
                check(title, expr, &[legend]) > 0,
                "{title}: no showmix metric"
            );
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            check("templating", q, &[]);
        }
    }
}
