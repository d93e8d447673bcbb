//! nginx with the RTMP module (Debian's `libnginx-mod-rtmp`) as a CDN stand-in on a loopback
//! port: push tests and the soak bench publish to it, stop, pause and restart it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx with the RTMP module on a loopback port, config and logs in `dir`.
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path, port: u16) -> Nginx {
        let conf = dir.join("nginx.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "load_module {NGINX_MODULE};\n\
                 daemon off;\n\
                 master_process off;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
                   application live {{ live on; }} }} }}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (ops/install-deps.sh installs nginx and libnginx-mod-rtmp)");
        let mut n = Nginx {
            child: Some(child),
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("nginx exited ({status}): {}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx does not listen on {port}: {}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("nginx running").id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} nginx failed");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused nginx must be resumed to die of SIGKILL promptly: it is anyway, but be
            // explicit.
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid().to_string()])
                .status();
        }
        self.stop();
    }
}
