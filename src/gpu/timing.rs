//! Timing kernels: GPU timestamp queries around a compute pass where the adapter has
//! TIMESTAMP_QUERY, the host clock around submit + wait elsewhere (and said so).

#[cfg(not(target_arch = "wasm32"))]
use web_time::Instant;

use super::Gpu;
#[cfg(not(target_arch = "wasm32"))]
use super::{Launch, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    GpuTimestamps,
    Host,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "GPU timestamp queries",
            Clock::Host => "host clock around submit + wait",
        }
    }
}

impl Gpu {
    pub fn clock(&self) -> Clock {
        if self.features.timestamp_query {
            Clock::GpuTimestamps
        } else {
            Clock::Host
        }
    }

    /// Seconds for one pass holding `reps` repetitions of `launches` (native: it waits).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn time_pass(&self, launches: &[&Launch], reps: usize) -> Result<f64> {
        let what = "timing";
        if self.clock() == Clock::Host {
            let t = Instant::now();
            let all: Vec<&Launch> = (0..reps).flat_map(|_| launches.iter().copied()).collect();
            self.submit(&all);
            self.wait()?;
            return Ok(t.elapsed().as_secs_f64());
        }
        let (query_set, resolve, staging) = self.scoped(what, || {
            let qs = self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("timing"), ty: wgpu::QueryType::Timestamp, count: 2 });
            let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (qs, resolve, staging)
        })?;
        self.scoped(what, || {
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &query_set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
                });
                for _ in 0..reps {
                    for l in launches {
                        l.record(&mut pass);
                    }
                }
            }
            enc.resolve_query_set(&query_set, 0..2, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, 16);
            self.queue.submit([enc.finish()]);
        })?;
        let bytes = self.read_staging(&staging, what)?;
        let ticks: Vec<u64> = bytemuck::cast_slice::<u8, u64>(&bytes).to_vec();
        let ns = ticks[1].saturating_sub(ticks[0]) as f64 * self.queue.get_timestamp_period() as f64;
        Ok(ns * 1e-9)
    }

    /// Median seconds per repetition of `launches` after a warm-up: samples of passes that
    /// each last about 0.1 s (at least one repetition).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn median_time(&self, launches: &[&Launch], samples: usize) -> Result<f64> {
        self.time_pass(launches, 1)?; // warm-up (and compile)
        let once = self.time_pass(launches, 1)?.max(1e-7);
        let reps = ((0.1 / once) as usize).clamp(1, 200);
        let mut times = Vec::with_capacity(samples.max(1));
        for _ in 0..samples.max(1) {
            times.push(self.time_pass(launches, reps)? / reps as f64);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        Ok(times[times.len() / 2])
    }
}
