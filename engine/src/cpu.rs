//! CPU per room, from the kernel's per-thread accounting (`/proc/self/task/*/stat`); no
//! GStreamer types here.
//!
//! A room's threads are the streaming threads its pipeline starts (each registers its thread
//! id from the bus's sync handler on a stream-status `enter`, see `room::Room::start`) and the
//! threads those start themselves, such as x264's workers: a new Linux thread inherits its
//! creator's name, and GStreamer names each streaming thread after its element and pad
//! (`queue12:src`, unique in the process), so an unregistered thread whose name is the name of
//! exactly one room's registered thread counts for that room. Threads of other pipelines
//! (WebRTC sessions, pushes) and of the API count for none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Thread ids of one room's streaming threads, registered as they start.
#[derive(Clone, Debug, Default)]
pub struct RoomThreads(Arc<Mutex<HashSet<i32>>>);

impl RoomThreads {
    /// Registers the calling thread.
    pub fn register_current(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(tid);
    }

    pub fn ids(&self) -> HashSet<i32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets threads that have exited.
    fn retain(&self, alive: &HashMap<i32, Task>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t| alive.contains_key(t));
    }
}

/// One thread as `/proc/self/task/<tid>/stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub name: String,
    /// User plus system time, in clock ticks.
    pub ticks: u64,
}

/// Parses a `stat` line: `tid (name) state ppid ... utime stime ...`. The name may hold spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<(i32, Task)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tid = line[..open].trim().parse().ok()?;
    let name = line.get(open + 1..close)?.to_owned();
    // After ")": state(3) ppid(4) ... utime(14) stime(15), 1-based over the whole line.
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((
        tid,
        Task {
            name,
            ticks: utime + stime,
        },
    ))
}

/// Every thread of this process.
fn read_tasks() -> HashMap<i32, Task> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(s) = std::fs::read_to_string(e.path().join("stat"))
            && let Some((tid, t)) = parse_stat(&s)
        {
            out.insert(tid, t);
        }
    }
    out
}

/// Which room each thread counts for (see the module doc).
pub fn attribute(
    tasks: &HashMap<i32, Task>,
    rooms: &BTreeMap<String, HashSet<i32>>,
) -> HashMap<i32, String> {
    let mut owner: HashMap<i32, String> = HashMap::new();
    // Thread name -> the rooms that registered a thread of that name.
    let mut names: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (room, tids) in rooms {
        for tid in tids {
            if let Some(t) = tasks.get(tid) {
                owner.insert(*tid, room.clone());
                names.entry(&t.name).or_default().insert(room);
            }
        }
    }
    for (tid, t) in tasks {
        if owner.contains_key(tid) {
            continue;
        }
        if let Some(rs) = names.get(t.name.as_str())
            && rs.len() == 1
            && let Some(r) = rs.iter().next()
        {
            owner.insert(*tid, (*r).to_owned());
        }
    }
    owner
}

/// Samples CPU use per room and for the whole process, in percent of one core.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Option<(Instant, HashMap<i32, Task>)>,
    /// Per room over the last interval.
    pub rooms: BTreeMap<String, f64>,
    /// The whole process over the last interval.
    pub process: f64,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

impl CpuMeter {
    /// Takes a sample; figures cover the time since the previous one.
    pub fn sample(&mut self, rooms: &BTreeMap<String, RoomThreads>) {
        let now = Instant::now();
        let tasks = read_tasks();
        for r in rooms.values() {
            r.retain(&tasks);
        }
        let ids: BTreeMap<String, HashSet<i32>> =
            rooms.iter().map(|(k, v)| (k.clone(), v.ids())).collect();
        if let Some((then, prev)) = &self.last {
            let dt = now.duration_since(*then).as_secs_f64();
            if dt > 0.0 {
                let (per_room, total) = usage(prev, &tasks, &attribute(&tasks, &ids));
                let scale = 100.0 / ticks_per_second() / dt;
                self.rooms = ids
                    .keys()
                    .map(|r| {
                        let v = per_room.get(r).copied().unwrap_or(0) as f64 * scale;
                        (r.clone(), (v * 10.0).round() / 10.0)
                    })
                    .collect();
                self.process = (total as f64 * scale * 10.0).round() / 10.0;
            }
        }
        self.last = Some((now, tasks));
    }
}

/// Ticks used between two samples, per room and in total. Threads that started in between
/// count from zero; threads that ended in between are lost (their last ticks are gone).
pub fn usage(
    prev: &HashMap<i32, Task>,
    now: &HashMap<i32, Task>,
    owner: &HashMap<i32, String>,
) -> (HashMap<String, u64>, u64) {
    let mut per_room: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for (tid, t) in now {
        // A reused id with a new name is a new thread.
        let before = prev
            .get(tid)
            .filter(|p| p.name == t.name)
            .map_or(0, |p| p.ticks);
        let d = t.ticks.saturating_sub(before);
        total += d;
        if let Some(r) = owner.get(tid) {
            *per_room.entry(r.clone()).or_default() += d;
        }
    }
    (per_room, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, ticks: u64) -> Task {
        Task {
            name: name.into(),
            ticks,
        }
    }

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line = "4242 (queue1:src) S 1 4200 4200 0 -1 4194624 10 0 0 0 7 3 0 0 20 0 9 0 \
                    100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 -1 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some((4242, task("queue1:src", 10))));
        let odd = "7 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 100 25 0 0 20 0 1 0 0 0 0";
        assert_eq!(parse_stat(odd), Some((7, task("a (b) c", 125))));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn inherited_names_count_for_the_one_room_that_has_them() {
        let tasks: HashMap<i32, Task> = [
            (1, task("queue1:src", 0)),
            (2, task("queue1:src", 0)), // x264 worker started by thread 1
            (3, task("queue2:src", 0)),
            (4, task("compositor:src", 0)),
            (5, task("compositor:src", 0)),
            (6, task("compositor:src", 0)), // unregistered, name in two rooms
            (7, task("showmix-api", 0)),
        ]
        .into();
        let rooms: BTreeMap<String, HashSet<i32>> = [
            ("a".to_owned(), HashSet::from([1, 4])),
            ("b".to_owned(), HashSet::from([3, 5, 99])),
        ]
        .into();
        let owner = attribute(&tasks, &rooms);
        assert_eq!(owner.get(&1).map(String::as_str), Some("a"));
        assert_eq!(owner.get(&2).map(String::as_str), Some("a"));
        assert_eq!(owner.get(&3).map(String::as_str), Some("b"));
        assert_eq!(owner.get(&5).map(String::as_str), Some("b"));
        assert_eq!(owner.get(&6), None, "ambiguous");
        assert_eq!(owner.get(&7), None, "not a room's");
    }

    #[test]
    fn usage_between_samples() {
        let prev: HashMap<i32, Task> = [(1, task("q:src", 10)), (2, task("api", 5))].into();
        let now: HashMap<i32, Task> = [
            (1, task("q:src", 40)),
            (2, task("other", 7)), // id reused by a new thread
            (3, task("q:src", 4)),
        ]
        .into();
        let owner: HashMap<i32, String> = [(1, "a".to_owned()), (3, "a".to_owned())].into();
        let (per_room, total) = usage(&prev, &now, &owner);
        assert_eq!(per_room.get("a"), Some(&34));
        assert_eq!(total, 30 + 7 + 4);
    }

    #[test]
    fn meter_counts_a_registered_thread_spinning() {
        fn thread_cpu() -> std::time::Duration {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: ts is a valid timespec to write.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        }
        let threads = RoomThreads::default();
        let rooms: BTreeMap<String, RoomThreads> = [("r".to_owned(), threads.clone())].into();
        let mut m = CpuMeter::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (spun_tx, spun_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let t = threads.clone();
        let worker = std::thread::spawn(move || {
            t.register_current();
            let _ = ready_tx.send(());
            let _ = go_rx.recv();
            // 300 ms of CPU, however busy the machine is (at most 10 s of wall time).
            let wall = Instant::now();
            let mut x = 0u64;
            while thread_cpu() < std::time::Duration::from_millis(300)
                && wall.elapsed() < std::time::Duration::from_secs(10)
            {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
            std::hint::black_box(x);
            let _ = spun_tx.send(thread_cpu());
            // Alive until sampled: an ended thread's ticks are gone with it.
            let _ = end_rx.recv();
        });
        ready_rx.recv().unwrap();
        m.sample(&rooms);
        let t0 = Instant::now();
        go_tx.send(()).unwrap();
        let used = spun_rx.recv().unwrap();
        m.sample(&rooms);
        let dt = t0.elapsed().as_secs_f64();
        end_tx.send(()).unwrap();
        worker.join().unwrap();
        let room_s = m.rooms.get("r").copied().unwrap_or(0.0) / 100.0 * dt;
        // Ticks are 10 ms: allow two of them and rounding.
        assert!(
            (room_s - used.as_secs_f64()).abs() < 0.05,
            "room {room_s:.3} s, thread {used:?}"
        );
        assert!(m.process / 100.0 * dt >= room_s - 0.02);
        m.sample(&rooms);
        assert_eq!(threads.ids().len(), 0, "the ended thread is forgotten");
    }
}
