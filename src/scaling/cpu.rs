//! This process's CPU use as a share of its cores, from the user and
//! system times of `/proc/self/stat` (Linux; elsewhere `None`).

use std::time::Instant;

/// Clock ticks per second of `/proc` times (`CLK_TCK`: 100 on Linux for
/// every architecture it ships on).
const TICKS: f64 = 100.0;

/// Measures the share since its last reading.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    last: Option<(Instant, u64)>,
    cores: f64,
}

impl CpuMeter {
    pub(crate) fn new() -> Self {
        CpuMeter {
            last: ticks().map(|t| (Instant::now(), t)),
            cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        }
    }

    /// The CPU share (0..1 of all cores) since the last call.
    pub(crate) fn share(&mut self) -> Option<f64> {
        let now = (Instant::now(), ticks()?);
        let (then, before) = self.last.replace(now)?;
        let wall = now.0.saturating_duration_since(then).as_secs_f64();
        (wall > 0.0)
            .then(|| (now.1.saturating_sub(before) as f64 / TICKS / wall / self.cores).clamp(0.0, 1.0))
    }
}

/// utime + stime of this process, in clock ticks.
fn ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')', field 3 (state) is index 0: utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_shows_up() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let mut meter = CpuMeter::new();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let share = meter.share().expect("a reading");
        assert!(share > 0.1, "one core busy for 300 ms: {share}");
    }
}
