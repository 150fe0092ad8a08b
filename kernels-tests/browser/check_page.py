#!/usr/bin/env python3
"""End-to-end test of the browser page, in headless Chromium on its WebGPU (SwiftShader).

Serves the page with `vaegan web`, lets it train mnist-mlp for STEPS steps from a fixed
seed on the first 6,400 MNIST images, and checks:
  - the losses fall (the pixel BCE at least 40 % below its first reading);
  - they match the native run of the same seed, batch and images (`vaegan train` on
    Vulkan): the first reading to 2e-3 (same weights, data and noise; only f32 rounding
    and WGSL's transcendental accuracy differ), every reading of the first 100 steps to
    3e-2, and each loss's mean over the last 100 steps to within 4 standard errors (of
    a correlated series: see standard_error_of_mean). A GAN
    amplifies rounding differences step by step (measured: 3e-4 at step 10, 1e-2 at 100,
    6e-2 at 240, then the discriminator's outputs part ways), so later steps agree in
    distribution, not digit by digit;
  - the downloaded checkpoint samples with `vaegan sample --checkpoint` and loads back
    into the page at the same step;
  - a short conditioned run (`&conditioned=1`) draws a column per digit, and its
    checkpoint samples a chosen digit with `vaegan sample --condition`;
and saves a screenshot of the page after training.

Usage: check_page.py --vaegan target/debug/vaegan --work DIR [--screenshot PNG]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

STEPS = 300
SEED = 1
BATCH = 64
LIMIT = 6400
FIRST_TOL = 2e-3
EARLY_STEPS = 100
EARLY_TOL = 3e-2
Z_MAX = 4.0
FALL = 0.6


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def serve(vaegan):
    server = subprocess.Popen([vaegan, "web", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    if "http://" not in line:
        server.kill()
        fail(f"`vaegan web` did not start: {line}{server.stdout.read()}")
    url = line.split("at ", 1)[1].split(" ", 1)[0]
    return server, url


def native_run(vaegan, out):
    env = dict(os.environ, VAEGAN_AUTOTUNE="0")
    args = [vaegan, "train", "--preset", "mnist-mlp", "--batch", str(BATCH), "--seed", str(SEED), "--limit", str(LIMIT),
            "--test-limit", "250", "--epochs", str(STEPS * BATCH // LIMIT), "--out", out]
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"native run failed: {' '.join(args)}\n{r.stderr}")
    with open(os.path.join(out, "losses.csv")) as f:
        rows = list(csv.DictReader(f))
    return {int(r["step"]): {k: float(v) for k, v in r.items() if k != "step" and v != ""} for r in rows}


def browser(download_dir):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,820"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    return d


def wait_state(d, states, timeout, what):
    """Waits for the page to reach one of `states`: the page resolves a promise when it
    does (`vaeganRun.until`), so nothing here polls; `timeout` only bounds a page that
    hangs, and is minutes beyond what the slowest host needs."""
    # Selenium's request to chromedriver has its own read timeout (120 s for Chrome), which
    # a busy host's training outlasted while the script was still within its bound (a CI
    # run failed so): the request may take as long as the script, and a minute more.
    d.set_script_timeout(timeout)
    d.command_executor.client_config.timeout = timeout + 60
    r = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!window.vaeganRun) { done({state: 'error', error: 'the page script did not run'}); return; }"
        "window.vaeganRun.until(arguments[0]).then(done);",
        states,
    )
    if r["state"] == "error":
        fail(f"{what}: the page says: {r['error']}")
    return r


def wait_for_file(path, timeout):
    """Chromium writes a download as `<name>.crdownload` and renames it when complete, so
    the final name appearing is the event; it is looked for until `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def download_and_sample(d, vaegan, downloads, steps, sample, extra=()):
    """Clicks *Download checkpoint*, waits for the file, samples it with `vaegan sample`
    (plus `extra` arguments); returns the checkpoint's path and the CLI's stderr."""
    d.find_element(By.ID, "download").click()
    path = os.path.join(downloads, f"vaegan-mnist-mlp-step{steps}.safetensors")
    if not wait_for_file(path, 600):
        fail(f"the page's checkpoint at step {steps} did not arrive in {downloads}: {os.listdir(downloads)}")
    r = subprocess.run([vaegan, "sample", "--checkpoint", path, *extra, "--out", sample], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(sample):
        fail(f"`vaegan sample --checkpoint {path} {' '.join(extra)}` failed: {r.stderr}")
    return path, r.stderr


def mean(values):
    return sum(values) / len(values)


def variance(values):
    m = mean(values)
    return sum((x - m) ** 2 for x in values) / (len(values) - 1)


def autocorrelation_time(values):
    """τ = 1 + 2·Σ ρ_k, summed while the autocorrelations stay positive (the initial
    positive sequence), at least 1. Consecutive readbacks of a training run are correlated
    (the weights change a little per step), so the variance of their mean is τ·σ²/n, not
    σ²/n: treating them as independent would understate it by the factor τ."""
    n, m = len(values), mean(values)
    c0 = sum((x - m) ** 2 for x in values) / n
    if c0 <= 0:
        return 1.0
    tau = 1.0
    for k in range(1, n // 2):
        rho = sum((values[i] - m) * (values[i + k] - m) for i in range(n - k)) / (n * c0)
        if rho <= 0:
            break
        tau += 2 * rho
    return tau


def standard_error_of_mean(values):
    """The standard error of a correlated series' mean: √(τ·σ²/n)."""
    return (autocorrelation_time(values) * variance(values) / len(values)) ** 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaegan", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--screenshot")
    a = ap.parse_args()
    vaegan = os.path.abspath(a.vaegan)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    screenshot = os.path.abspath(a.screenshot or os.path.join(work, "page.png"))

    print(f"native run: mnist-mlp, seed {SEED}, batch {BATCH}, {LIMIT} images, {STEPS} steps", flush=True)
    native = native_run(vaegan, os.path.join(work, "native"))

    server, url = serve(vaegan)
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads, exist_ok=True)
    d = browser(downloads)
    try:
        page = f"{url}?preset=mnist-mlp&batch={BATCH}&seed={SEED}&limit={LIMIT}&steps={STEPS}&grid=100&autostart=1"
        print(f"page: {page}", flush=True)
        t0 = time.time()
        d.get(page)
        wait_state(d, ["done"], 3000, "training in the page")
        took = time.time() - t0
        run = d.execute_script("return {history: vaeganRun.history, adapter: vaeganRun.adapter, sps: vaeganRun.samplesPerSecond}")
        d.save_screenshot(screenshot)
        print(f"page trained {STEPS} steps in {took:.0f} s on {run['adapter']} ({run['sps']:.0f} samples/s); screenshot {screenshot}", flush=True)

        web = {int(step): values for step, values in run["history"]}
        common = sorted(set(web) & set(native))
        if len(common) < STEPS // 20:
            fail(f"only {len(common)} steps read back by both runs (page {sorted(web)[:5]}…, native {sorted(native)[:5]}…)")
        names = sorted(native[common[0]])
        # The same start.
        first = common[0]
        for n in names:
            w, v = web[first][n], native[first][n]
            err = abs(w - v) / max(abs(v), 1e-6)
            print(f"step {first} {n}: page {w:.6g} native {v:.6g} (relative {err:.1e})")
            if not err <= FIRST_TOL:
                fail(f"step {first} {n}: page {w} vs native {v}: relative difference {err:.2e} > {FIRST_TOL}")
        # How far apart the two runs drift, readback by readback.
        drift = []
        for st in common:
            worst = max(names, key=lambda n: abs(web[st][n] - native[st][n]) / max(abs(native[st][n]), 1e-6))
            drift.append((st, worst, abs(web[st][worst] - native[st][worst]) / max(abs(native[st][worst]), 1e-6)))
        print("largest relative difference per readback: " + ", ".join(f"{st}: {e:.1e} ({n})" for st, n, e in drift))
        # The losses fall.
        late = [s for s in common if s > STEPS - 100]
        bce_late = mean([web[s]["bce"] for s in late])
        if not bce_late <= FALL * web[first]["bce"]:
            fail(f"the page's pixel BCE did not fall: {web[first]['bce']:.1f} at step {first}, {bce_late:.1f} over the last 100 steps")
        # The same course: digit by digit while rounding differences are small…
        for st, n, e in drift:
            if st <= EARLY_STEPS and not e <= EARLY_TOL:
                fail(f"step {st} {n}: page {web[st][n]} vs native {native[st][n]}: relative difference {e:.2e} > {EARLY_TOL}")
        # …then in distribution: each loss's mean over the last 100 steps, within Z_MAX
        # standard errors of the two runs' readbacks, each series' error corrected for its
        # autocorrelation (standard_error_of_mean).
        for n in names:
            a, b = [web[s][n] for s in late], [native[s][n] for s in late]
            w, v = mean(a), mean(b)
            se = (standard_error_of_mean(a) ** 2 + standard_error_of_mean(b) ** 2) ** 0.5
            z = abs(w - v) / max(se, 1e-9 * abs(v), 1e-12)
            print(f"steps {late[0]}–{late[-1]} mean {n}: page {w:.5g} native {v:.5g} (relative {abs(w - v) / max(abs(v), 1e-6):.3f}, {z:.1f} standard errors)")
            if not z <= Z_MAX:
                fail(f"mean {n} over the last 100 steps: page {w} vs native {v}: {z:.1f} standard errors apart > {Z_MAX}")

        # The checkpoint: downloaded, sampled by the CLI, loaded back.
        sample = os.path.join(work, "samples_from_page_checkpoint.png")
        path, _ = download_and_sample(d, vaegan, downloads, STEPS, sample)
        print(f"`vaegan sample` read the page's checkpoint: {sample}")
        d.find_element(By.ID, "load").send_keys(path)
        wait_state(d, ["ready"], 1200, "loading the checkpoint back")
        step = d.execute_script("return vaeganRun.step")
        if step != STEPS:
            fail(f"the checkpoint loaded back at step {step}, expected {STEPS}")
        print(f"the page loaded its checkpoint back at step {step}")

        # A conditioned run: the model reads each image's digit, the grid has a column
        # per digit, and its checkpoint samples a chosen digit with the CLI.
        steps = 20
        d.get(f"{url}?preset=mnist-mlp&batch={BATCH}&seed={SEED}&limit=640&steps={steps}&grid={steps}&autostart=1&conditioned=1")
        wait_state(d, ["done"], 1200, "a conditioned run in the page")
        width = d.execute_script("return document.getElementById('grid').width")
        if width != 10 * 30 + 2:
            fail(f"the conditioned grid is {width} pixels wide, expected a column per digit ({10 * 30 + 2})")
        sample = os.path.join(work, "conditioned_7.png")
        _, said = download_and_sample(d, vaegan, downloads, steps, sample, ("--condition", "7"))
        if "labels 7" not in said:
            fail(f"`vaegan sample --condition 7` of the conditioned page run: {said}")
        print(f"a conditioned run in the page: a grid of a column per digit, and its checkpoint samples 7s with the CLI ({sample})")
    finally:
        for e in d.get_log("browser"):
            if e["level"] == "SEVERE" and "favicon" not in e["message"]:
                print(f"browser console: {e['message']}", file=sys.stderr)
        d.quit()
        server.kill()
    print("page end-to-end: ok")


if __name__ == "__main__":
    main()
