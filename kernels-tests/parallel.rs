//! Data-parallel training over MPI, with several processes on one machine (lavapipe).
//!
//! - Sharding: every replica's rows of every global batch, over an epoch, are each
//!   sample exactly once (always run).
//! - With the `mpi` feature (CI builds it, with Open MPI installed): `mpirun -np 2 vaegan
//!   train` ends with the parameters one process reaches at the same global batch (only
//!   the order of the gradient sums differs); its checkpoint resumes in one process and
//!   again continues as the single run; a rank killed mid-epoch stops the run and leaves
//!   the last checkpoint loadable; a diverging run stops every rank with a clear message.

use vaegan::train::feed::Shard;
use vaegan::train::permutation;

#[test]
fn shards_cover_every_sample_of_an_epoch_once() {
    for (count, batch, ranks) in [(100usize, 12usize, 1usize), (100, 12, 2), (100, 12, 3), (100, 12, 4), (257, 16, 4), (64, 64, 8)] {
        let perm = permutation(9, 2, count);
        let steps = count / batch;
        let mut seen = vec![0u32; count];
        for step in 0..steps {
            let mut rows = vec![];
            for index in 0..ranks {
                let s = Shard { index, count: ranks };
                assert_eq!(s.rows(batch) * ranks, batch);
                let first = step * batch + s.first(batch);
                rows.extend_from_slice(&perm[first..first + s.rows(batch)]);
            }
            // The replicas' rows, in rank order, are the global batch.
            assert_eq!(rows, perm[step * batch..(step + 1) * batch], "step {step}, {ranks} ranks");
            for r in rows {
                seen[r as usize] += 1;
            }
        }
        // An epoch takes steps·batch samples, each once; the rest of the set (fewer than a
        // batch) waits for another epoch's shuffle.
        assert_eq!(seen.iter().filter(|&&c| c == 1).count(), steps * batch);
        assert!(seen.iter().all(|&c| c <= 1));
    }
}

/// The data-parallel step (each group's gradient read back, reduced, written back, then
/// the updates) with a reduction that changes nothing is the one-submission step, bit for
/// bit; and replica r of n draws rows r·b… of the whole batch's random numbers.
#[test]
fn the_reduced_step_is_the_step_and_replicas_draw_their_rows() {
    use vaegan::graph::{ExecOptions, GpuExecutor};
    use vaegan::model::{build_step, RunConfig};

    let config = RunConfig::from_toml(crate::interrupt::TINY_TOML, "tiny.toml").unwrap();
    let c = &config.model;
    let mut rng = crate::common::rng("reduced step");
    let rules = |g: &vaegan::graph::Graph| Some(g.groups.iter().map(|gr| config.optim.rule(&gr.name, 0)).collect());
    let make = |batch: usize| {
        let step = build_step(c, batch, 5).unwrap();
        let opts = ExecOptions { seed: 5, reuse: false, update: rules(&step.graph), precision: config.optim.precision };
        (GpuExecutor::new(crate::common::gpu(), step.graph.clone(), opts).unwrap(), step)
    };
    let batch = 8;
    let x: Vec<f32> = crate::common::uniform(&mut rng, batch * c.input, 0.0, 1.0).iter().map(|&v| v as f32).collect();
    let (mut a, sa) = make(batch);
    let (mut b, _) = make(batch);
    let mut calls = 0;
    for _ in 0..3 {
        a.set_input(sa.x, &x).unwrap();
        b.set_input(sa.x, &x).unwrap();
        a.step_with(false, None).unwrap();
        b.step_reduced(false, None, &mut |_, _| {
            calls += 1;
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(calls, 9, "one reduction per group per step");
    let (pa, pb) = (a.read_params().unwrap(), b.read_params().unwrap());
    for ((n, _, u), (_, _, v)) in pa.iter().zip(&pb) {
        assert!(u.iter().zip(v).all(|(p, q)| p.to_bits() == q.to_bits()), "{n} differs");
    }

    // The prior samples z_p of two half-batch replicas are the whole batch's, in order.
    let (mut whole, sw) = make(batch);
    whole.set_input(sw.x, &x).unwrap();
    whole.step_with(false, None).unwrap();
    let z_p = |e: &GpuExecutor, g: &vaegan::graph::Graph| {
        let t = (0..g.tensors.len()).find(|&t| g.name(t) == "z_p").unwrap();
        e.read(t).unwrap()
    };
    let mut halves = vec![];
    for r in 0..2 {
        let (mut h, sh) = make(batch / 2);
        h.set_replica(r, 2).unwrap();
        h.set_input(sh.x, &x[r * batch / 2 * c.input..(r + 1) * batch / 2 * c.input]).unwrap();
        h.step_with(false, None).unwrap();
        halves.extend(z_p(&h, &sh.graph));
    }
    assert_eq!(halves, z_p(&whole, &sw.graph));
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use vaegan::checkpoint::{self, Checkpoint};

    use crate::interrupt::{as_test_run, finish, setup, Run, Watched};

    /// `mpirun -np N vaegan …` as the tests run it: as root if need be, more processes
    /// than cores allowed, idle ranks yielding the cores to lavapipe instead of spinning.
    fn mpirun(n: usize, vaegan_args: &[&str]) -> Command {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np", &n.to_string()]);
        c.arg(env!("CARGO_BIN_EXE_vaegan")).args(vaegan_args);
        as_test_run(&mut c);
        c
    }

    fn train_args<'a>(run: &'a Run, out: &'a Path, epochs: &'a str) -> Vec<&'a str> {
        vec![
            "train",
            "--config",
            run.config.to_str().unwrap(),
            "--data",
            run.data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "16",
            "--eval-batch",
            "32",
            "--epochs",
            epochs,
        ]
    }

    /// max |a − b| / max |b| over every parameter and Adam moment.
    fn worst_difference(a: &Checkpoint, b: &Checkpoint) -> f32 {
        let mut worst = 0f32;
        for (x, y) in [(&a.params, &b.params), (&a.adam_m, &b.adam_m), (&a.adam_v, &b.adam_v)] {
            for ((n, _, u), (m, _, v)) in x.iter().zip(y.iter()) {
                assert_eq!(n, m);
                let scale = v.iter().fold(0f32, |s, t| s.max(t.abs())).max(1e-30);
                let d = u.iter().zip(v).fold(0f32, |s, (p, q)| s.max((p - q).abs()));
                worst = worst.max(d / scale);
            }
        }
        worst
    }

    /// Tolerance on the difference: the replicas sum each gradient in two halves, then
    /// add the halves (one process sums it at once), in f32; over 32 Adam steps that
    /// order moves parameters by about 1e-6 of their size.
    const TOL: f32 = 2e-5;

    #[test]
    fn two_ranks_reach_the_parameters_of_one_process_and_resume_with_any_number() {
        let run = setup();
        let one = run.dir.path().join("one");
        let two = run.dir.path().join("two");
        let mut c = crate::interrupt::vaegan();
        c.args(train_args(&run, &one, "2"));
        let (code, err) = finish(c.spawn().unwrap());
        assert_eq!(code, 0, "{err}");
        // Two processes for the first epoch, then one resumes the second.
        let (code, err) = finish(mpirun(2, &train_args(&run, &two, "1")).spawn().unwrap());
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("rank 1 of 2") && err.contains("8 of each batch of 16"), "{err}");
        let after_one = Checkpoint::load(&checkpoint::path_in(&two)).unwrap();
        assert_eq!((after_one.epoch, after_one.step, after_one.batch), (1, 16, 16));
        let mut c = crate::interrupt::vaegan();
        c.args(["train", "--resume", two.to_str().unwrap(), "--epochs", "2"]);
        let (code, err) = finish(c.spawn().unwrap());
        assert_eq!(code, 0, "{err}");
        let a = Checkpoint::load(&checkpoint::path_in(&two)).unwrap();
        let b = Checkpoint::load(&checkpoint::path_in(&one)).unwrap();
        assert_eq!((a.step, a.epoch, a.updates.clone()), (b.step, b.epoch, b.updates.clone()));
        let worst = worst_difference(&a, &b);
        eprintln!("2 ranks then 1 against 1 process, 32 steps: worst relative difference {worst:.2e}");
        assert!(worst <= TOL, "{worst} > {TOL}");
        // And back: one process's checkpoint continued by four ranks.
        let four = run.dir.path().join("four");
        std::fs::create_dir_all(&four).unwrap();
        std::fs::copy(checkpoint::path_in(&one), checkpoint::path_in(&four)).unwrap();
        let (code, err) = finish(mpirun(4, &["train", "--resume", four.to_str().unwrap(), "--epochs", "3"]).spawn().unwrap());
        assert_eq!(code, 0, "{err}");
        let mut c = crate::interrupt::vaegan();
        c.args(["train", "--resume", one.to_str().unwrap(), "--epochs", "3"]);
        let (code, err) = finish(c.spawn().unwrap());
        assert_eq!(code, 0, "{err}");
        let worst = worst_difference(&Checkpoint::load(&checkpoint::path_in(&four)).unwrap(), &Checkpoint::load(&checkpoint::path_in(&one)).unwrap());
        eprintln!("1 process then 4 ranks against 1 process, epoch 3: worst relative difference {worst:.2e}");
        assert!(worst <= TOL, "{worst} > {TOL}");
    }

    #[test]
    fn a_killed_rank_stops_the_run_and_the_checkpoint_stays_whole() {
        let run = setup();
        let out = run.dir.path().join("killed");
        let mut w = Watched::spawn(mpirun(2, &train_args(&run, &out, "50")));
        // Rank 0 has written epoch 1's checkpoint and started epoch 2: rank 1 dies now,
        // in the middle of the run, whatever the host's speed.
        w.wait_for("epoch 2/50: training from step");
        // Each rank's stderr reaches us through mpirun on its own: rank 1's first line may
        // come after rank 0's epoch line (it did once the pipelines compiled faster).
        // Rank 1 writes its line whole, but rank 0's lines reach the pipe in pieces, so
        // rank 1's may land inside one of them (it did in CI): look for it anywhere.
        const SAID: &str = "rank 1 of 2 (pid ";
        w.wait_for(SAID);
        let text = w.text();
        let at = text.find(SAID).expect("rank 1 said its pid") + SAID.len();
        let pid: i32 = text[at..].split(')').next().unwrap().parse().unwrap_or_else(|e| panic!("rank 1's pid: {e}\n{text}"));
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let t = Instant::now();
        let (code, text) = w.finish();
        assert_ne!(code, 0, "the run went on without rank 1:\n{text}");
        // The same patience as every wait on a run: a slow host is not a hang.
        assert!(t.elapsed() < Duration::from_secs(600), "the run took {:?} to stop", t.elapsed());
        let ck = Checkpoint::load(&checkpoint::path_in(&out)).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(ck.epoch >= 1, "{text}");
        // It resumes, in one process.
        let mut c = crate::interrupt::vaegan();
        c.args(["train", "--resume", out.to_str().unwrap(), "--epochs", &(ck.epoch + 1).to_string()]);
        let (code, err) = finish(c.spawn().unwrap());
        assert_eq!(code, 0, "{err}");
    }

    #[test]
    fn a_diverging_run_stops_every_rank_with_a_clear_message() {
        let run = setup();
        let out = run.dir.path().join("diverged");
        let mut args = train_args(&run, &out, "3");
        args.extend(["--lr", "1e30"]);
        let (code, err) = finish(mpirun(2, &args).spawn().unwrap());
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("training diverged") && err.contains("stopping every rank"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    #[test]
    fn a_global_batch_that_does_not_split_is_refused() {
        let run = setup();
        let out = run.dir.path().join("odd");
        let mut args = train_args(&run, &out, "1");
        let i = args.iter().position(|a| *a == "16").unwrap();
        args[i] = "15";
        let (code, err) = finish(mpirun(2, &args).spawn().unwrap());
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("--batch 15 (the global batch) does not split evenly over 2 processes"), "{err}");
    }
}
