//! Runs always resume: side files cut mid-row or holding garbage, epochs already done,
//! epochs shorter than the loss readback cadence, and the data limits a run started with.

use std::process::Stdio;

use vaegan::checkpoint::{self, Checkpoint};

use crate::interrupt::{assert_whole_csv, finish, setup};

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A kill during a CSV append leaves a row cut short; a user may leave garbage. The
/// resumed run reports what it drops, keeps the good rows, and the files end up whole.
#[test]
fn resume_after_a_cut_csv_row_and_garbage() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let losses = run.out.join("losses.csv");
    let metrics = run.out.join("metrics.csv");
    let good_losses = std::fs::read_to_string(&losses).unwrap().lines().count();
    append(&losses, "not a row at all\n16,0.1,0.2\n99999,0.25,0.");
    append(&metrics, "2,32,1.");
    let (code, stderr) = finish(run.train(2, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("losses.csv: dropped 3 row(s) cut short or unreadable"), "{stderr}");
    assert!(stderr.contains("metrics.csv: dropped 1 row(s) cut short or unreadable"), "{stderr}");
    assert_whole_csv(&losses);
    assert_whole_csv(&metrics);
    assert!(std::fs::read_to_string(&losses).unwrap().lines().count() > good_losses);
    let epochs: Vec<String> = std::fs::read_to_string(&metrics).unwrap().lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(epochs, ["1", "2"]);
    assert!(run.out.join("loss_curves.png").exists());
}

/// Rows past the checkpoint (written before a kill that came before the next
/// checkpoint) are dropped, so that a resumed run does not repeat steps in losses.csv.
#[test]
fn rows_past_the_checkpoint_are_dropped_on_resume() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let losses = run.out.join("losses.csv");
    let columns = std::fs::read_to_string(&losses).unwrap().lines().next().unwrap().split(',').count();
    let fake: Vec<String> = (0..columns - 1).map(|_| "0.5".to_string()).collect();
    append(&losses, &format!("40,{}\n", fake.join(",")));
    let (code, stderr) = finish(run.train(2, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("dropped 1 row(s) past the checkpoint"), "{stderr}");
    assert_whole_csv(&losses);
}

/// Asking for epochs already done is a clear, successful no-op; so is --epochs 0.
#[test]
fn epochs_already_done_are_a_successful_no_op() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let path = checkpoint::path_in(&run.out);
    let before = std::fs::read(&path).unwrap();
    let metrics = std::fs::read(run.out.join("metrics.csv")).unwrap();
    for epochs in [1, 0] {
        let (code, stderr) = finish(run.train(epochs, &[]).spawn().unwrap());
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("1 epochs already done") && stderr.contains("nothing to train"), "{stderr}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the checkpoint changed");
    assert_eq!(std::fs::read(run.out.join("metrics.csv")).unwrap(), metrics);

    // A new folder with --epochs 0: nothing to do, said plainly.
    let fresh = setup();
    let (code, stderr) = finish(fresh.train(0, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing to train"), "{stderr}");
}

/// Epochs of 5 steps (fewer than the readback cadence of 10) still have loss means, and
/// a resumed run keeps the data limits it was started with.
#[test]
fn short_epochs_have_losses_and_resumed_runs_keep_their_limits() {
    let run = setup();
    let mut first = run.train(1, &["--limit", "80", "--test-limit", "48"]);
    let (code, stderr) = finish(first.stdout(Stdio::null()).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("80 training and 48 test images"), "{stderr}");
    let (code, stderr) = finish(run.train(3, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("80 training and 48 test images"), "the resumed run changed its data: {stderr}");
    let ck = Checkpoint::load(&checkpoint::path_in(&run.out)).unwrap();
    assert_eq!((ck.step, ck.epoch, ck.limit, ck.test_limit), (15, 3, Some(80), Some(48)));
    let metrics = std::fs::read_to_string(run.out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let train_cols: Vec<usize> = header.iter().enumerate().filter(|(_, h)| h.starts_with("train_")).map(|(i, _)| i).collect();
    assert!(!train_cols.is_empty());
    for row in metrics.lines().skip(1) {
        let fields: Vec<&str> = row.split(',').collect();
        for &c in &train_cols {
            assert!(fields[c].parse::<f64>().is_ok_and(f64::is_finite), "epoch without a loss mean: {row}");
        }
    }
    assert_whole_csv(&run.out.join("losses.csv"));
}

/// A run folder from before metrics columns were added (`fd_samples`, then
/// `fd_samples_live`) resumes with its rows kept, the new columns empty in them and filled
/// from then on — not started anew.
#[test]
fn a_metrics_file_without_the_newest_column_keeps_its_rows() {
    let newest = ["fd_samples", "fd_samples_live"];
    for missing in [1, 2] {
        let run = setup();
        let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
        assert_eq!(code, 0, "{stderr}");
        let metrics = run.out.join("metrics.csv");
        let text = std::fs::read_to_string(&metrics).unwrap();
        let (header, row) = (text.lines().next().unwrap(), text.lines().nth(1).unwrap());
        assert!(header.ends_with(&format!(",{}", newest.join(","))), "{header}");
        // As an earlier vaegan wrote it: without the last `missing` columns.
        let cut = |line: &str| line.rsplitn(missing + 1, ',').last().unwrap().to_string();
        let added = &newest[newest.len() - missing..];
        std::fs::write(&metrics, format!("{}\n{}\n", cut(header), cut(row))).unwrap();
        let (code, stderr) = finish(run.train(2, &[]).spawn().unwrap());
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(&format!("metrics.csv: added the column(s) {}, empty in its earlier rows", added.join(", "))), "{missing}: {stderr}");
        assert_whole_csv(&metrics);
        let text = std::fs::read_to_string(&metrics).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], header);
        let cells = |line: &str| line.split(',').map(str::to_string).collect::<Vec<_>>();
        let (first, second) = (cells(lines[1]), cells(lines[2]));
        let at = |name: &str| header.split(',').position(|c| c == name).unwrap();
        assert!(first[0] == "1" && added.iter().all(|c| first[at(c)].is_empty()), "epoch 1 kept, {added:?} empty: {}", lines[1]);
        let fd: f64 = second[at("fd_samples")].parse().unwrap_or(f64::NAN);
        assert!(second[0] == "2" && fd.is_finite() && fd > 0.0, "epoch 2 measured: {}", lines[2]);
        // This run keeps no average of its decoder: no last-weights FD beside it.
        assert!(second[at("fd_samples_live")].is_empty(), "{}", lines[2]);
    }
}
