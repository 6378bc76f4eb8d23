//! Busy CPU time of the whole machine, from `/proc/stat`: the server, its jailed workers, the load generator and the
//! kernel's work for all of them. Divided by the requests of a window it gives a cost per request that moves much
//! less with a noisy neighbour than throughput or latency do (time stolen by the hypervisor is not counted).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy_ticks: u64,
}

impl MachineCpu {
    pub fn sample() -> Option<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        // user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait and steal.
        let fields: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        Some(MachineCpu {
            busy_ticks: field(0) + field(1) + field(2) + field(5) + field(6),
        })
    }

    /// Busy CPU time between `before` and this sample.
    pub fn since(&self, before: &MachineCpu) -> Duration {
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Duration::from_secs_f64(self.busy_ticks.saturating_sub(before.busy_ticks) as f64 / per_second)
    }
}
