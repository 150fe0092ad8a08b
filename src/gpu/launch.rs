//! A launch is one prepared dispatch: pipeline, bind group, uniform parameters and
//! workgroup counts, all made once. Recording it into a pass costs nothing but the
//! dispatch itself, which is what lets a training step replay hundreds of them.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::{Gpu, GpuBuffer, Result};

pub struct Launch {
    /// Kernel and shapes, e.g. "matmul nt 64x512x784 +bias relu": named in errors and benches.
    pub name: String,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// The uniform block, kept so that per-step values (Adam's step, the RNG step) can be
    /// rewritten with `write_params` without rebuilding anything.
    pub params: Option<wgpu::Buffer>,
}

impl Launch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// Overwrites the uniform block (same layout as given at creation).
    pub fn write_params<P: bytemuck::Pod>(&self, gpu: &Gpu, params: &P) {
        if let Some(buf) = &self.params {
            gpu.queue.write_buffer(buf, 0, bytemuck::bytes_of(params));
        }
    }
}

impl Gpu {
    /// Builds a launch: a uniform block `params` at binding 0 and `buffers` at bindings
    /// 1, 2, ... as declared in the kernel.
    pub fn launch<P: bytemuck::Pod>(
        &self,
        name: String,
        pipeline: Arc<wgpu::ComputePipeline>,
        params: &P,
        buffers: &[&GpuBuffer],
        workgroups: [u32; 3],
    ) -> Result<Launch> {
        let slots: Vec<(u32, &GpuBuffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
        self.launch_at(name, pipeline, params, &slots, workgroups)
    }

    /// Like `launch`, with explicit binding numbers for entry points that use a subset
    /// of a module's bindings.
    pub fn launch_at<P: bytemuck::Pod>(
        &self,
        name: String,
        pipeline: Arc<wgpu::ComputePipeline>,
        params: &P,
        buffers: &[(u32, &GpuBuffer)],
        workgroups: [u32; 3],
    ) -> Result<Launch> {
        let max = self.max_groups();
        if workgroups.iter().any(|&g| g > max) {
            return Err(super::GpuError::shape(&name, format!("dispatch {workgroups:?} exceeds the adapter's {max} workgroups per dimension")));
        }
        let (bind_group, params) = self.scoped(&name, || {
            let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&name),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
            let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
            for (slot, b) in buffers {
                entries.push(wgpu::BindGroupEntry { binding: *slot, resource: b.binding() });
            }
            let bind_group =
                self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&name), layout: &pipeline.get_bind_group_layout(0), entries: &entries });
            (bind_group, uniform)
        })?;
        Ok(Launch { name, pipeline, bind_group, workgroups, params: Some(params) })
    }

    /// Records the launches into one compute pass, submits once and waits.
    pub fn run<'a>(&self, launches: impl IntoIterator<Item = &'a Launch>) -> Result<()> {
        let launches: Vec<&Launch> = launches.into_iter().collect();
        let what = launches.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join("; ");
        self.scoped(&what, || self.submit(&launches))?;
        self.wait()
    }

    /// Records and submits without waiting; for benchmarks and training loops.
    pub fn submit(&self, launches: &[&Launch]) -> wgpu::SubmissionIndex {
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("vaegan") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            for l in launches {
                l.record(&mut pass);
            }
        }
        self.queue.submit([enc.finish()])
    }
}
