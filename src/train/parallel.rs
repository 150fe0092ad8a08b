//! Data-parallel training: the processes of one run, each with a replica of the model on its
//! own adapter, each taking its share of every global batch.
//!
//! `Collective` is what the trainer needs from them: the mean of a gradient over replicas
//! (one all-reduce per parameter group per step), agreement on stopping and on the
//! balancing's choice (so that every replica takes the same steps and the same updates),
//! and a way to stop them all. One process is `Single` (no communication at all: the step
//! stays one GPU submission); under `mpirun` it is `Mpi` (the `mpi` cargo feature, on the
//! `mpi` crate over the system's MPI library).

/// How the processes of a run talk.
pub trait Collective {
    /// This process's rank, 0 … size − 1. Rank 0 writes checkpoints, logs and pictures.
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Replaces `values` by their mean over the ranks (every rank passes the same length).
    fn mean(&self, values: &mut [f32]);
    /// True on every rank when `flag` is true on any (stop when any rank was interrupted).
    fn any(&self, flag: bool) -> bool;
    /// Rank 0's `flags`, on every rank.
    fn broadcast(&self, flags: &mut [bool]);
    /// Waits until every rank has arrived.
    fn barrier(&self);
    /// Ends every rank of the run at once with `code` (after this rank printed why).
    fn abort(&self, code: i32) -> !;
}

/// The one process of a run.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn mean(&self, _: &mut [f32]) {}
    fn any(&self, flag: bool) -> bool {
        flag
    }
    fn broadcast(&self, _: &mut [bool]) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The rank and size `mpirun` (Open MPI, MPICH or any PMI launcher) gives this process,
/// if it was started by one: read from the environment, before MPI is initialised.
pub fn launched_by_mpirun() -> Option<(usize, usize)> {
    let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok()?.parse::<usize>().ok());
    let size = var(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"])?;
    let rank = var(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]).unwrap_or(0);
    Some((rank, size))
}

/// This process's rank among those on its machine (which adapter it takes by default).
pub fn local_rank() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"].iter().find_map(|n| std::env::var(n).ok()?.parse().ok()).unwrap_or(0)
}

#[cfg(feature = "mpi")]
pub use self::mpi_impl::Mpi;

#[cfg(feature = "mpi")]
mod mpi_impl {
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    use super::Collective;

    /// The processes `mpirun` started, over MPI_COMM_WORLD.
    pub struct Mpi {
        // Finalises MPI when dropped.
        _universe: mpi::environment::Universe,
        world: SimpleCommunicator,
        /// Scratch for the all-reduce (MPI's in-place form needs the same buffer twice).
        scratch: std::cell::RefCell<Vec<f32>>,
    }

    impl Mpi {
        /// Initialises MPI; None if it is already initialised or cannot be.
        pub fn init() -> Option<Mpi> {
            let universe = mpi::initialize()?;
            let world = universe.world();
            Some(Mpi { _universe: universe, world, scratch: Default::default() })
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn mean(&self, values: &mut [f32]) {
            let mut sum = self.scratch.borrow_mut();
            sum.resize(values.len(), 0.0);
            self.world.all_reduce_into(&*values, &mut sum[..], SystemOperation::sum());
            let n = self.size() as f32;
            for (v, s) in values.iter_mut().zip(sum.iter()) {
                *v = s / n;
            }
        }
        fn any(&self, flag: bool) -> bool {
            let mut out = 0i32;
            self.world.all_reduce_into(&(flag as i32), &mut out, SystemOperation::max());
            out != 0
        }
        fn broadcast(&self, flags: &mut [bool]) {
            let mut bytes: Vec<u8> = flags.iter().map(|&f| f as u8).collect();
            self.world.process_at_rank(0).broadcast_into(&mut bytes[..]);
            for (f, b) in flags.iter_mut().zip(bytes) {
                *f = b != 0;
            }
        }
        fn barrier(&self) {
            self.world.barrier();
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}
