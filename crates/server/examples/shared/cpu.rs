//! CPU accounting shared by the server's load generators (`load.rs`, `load_backup.rs`): CPU
//! time per kind of thread from `/proc`, sampled over a phase's measured window, and the load
//! average, so each phase can say how much of the machine it had.

use std::time::Instant;

/// Samples CPU use over `[warm_end, end]` from a thread of its own.
pub fn cpu_watch(warm_end: Instant, end: Instant) -> std::thread::JoinHandle<CpuSplit> {
    std::thread::spawn(move || {
        std::thread::sleep(warm_end.saturating_duration_since(Instant::now()));
        let before = cpu_ticks();
        let t0 = Instant::now();
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        cpu_split(before, cpu_ticks(), t0.elapsed().as_secs_f64())
    })
}

/// CPU time (clock ticks) by kind of thread: this process's tokio server workers, sqlx's SQLite
/// worker threads, the load generator, PostgreSQL's processes, and everything else on the machine.
#[derive(Clone, Copy, Default)]
pub struct CpuTicks {
    pub server: u64,
    pub sqlite: u64,
    pub client: u64,
    postgres: u64,
    machine_busy: u64,
    this_process: u64,
}

/// utime + stime of a `/proc/.../stat` line, with its `comm`.
pub fn stat_ticks(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

pub fn cpu_ticks() -> CpuTicks {
    let mut t = CpuTicks::default();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let Some((comm, ticks)) = stat_ticks(&text) else {
                continue;
            };
            if comm.starts_with("server") {
                t.server += ticks;
            } else if comm.starts_with("sqlx-sqlite") {
                t.sqlite += ticks;
            } else if comm.starts_with("client") {
                t.client += ticks;
            }
        }
    }
    if let Some((_, ticks)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
    {
        t.this_process = ticks;
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if !p
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            if let Some((comm, ticks)) = std::fs::read_to_string(p.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
            {
                if comm == "postgres" {
                    t.postgres += ticks;
                }
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        if let Some(line) = stat.lines().next() {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            t.machine_busy = total - idle;
        }
    }
    t
}

/// Cores used during a phase by each kind of thread.
#[derive(Clone, Copy, Default)]
pub struct CpuSplit {
    pub server: f64,
    /// sqlx's SQLite worker threads, or PostgreSQL's processes.
    pub db: f64,
    pub client: f64,
    /// Everything else on the machine (other processes).
    pub others: f64,
}

pub fn cpu_split(before: CpuTicks, after: CpuTicks, secs: f64) -> CpuSplit {
    let hz = 100.0; // USER_HZ
    let cores = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / secs;
    let mine = cores(before.this_process, after.this_process);
    let pg = cores(before.postgres, after.postgres);
    let busy = cores(before.machine_busy, after.machine_busy);
    CpuSplit {
        server: cores(before.server, after.server),
        db: cores(before.sqlite, after.sqlite) + pg,
        client: cores(before.client, after.client),
        others: (busy - mine - pg).max(0.0),
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
