//! Stable-toolchain fuzz smoke runner: no libFuzzer, no nightly.
//!
//! For each target it replays the corpus (`corpus/fuzz_<target>/`, plus any
//! crash files under `artifacts/fuzz_<target>/`) and then runs random
//! mutations of the corpus and of the built-in fixtures for a time budget,
//! through the same harness as the libFuzzer targets
//! (`baton_worker::codec::fuzzing::decode_stream` for the RPC decoders,
//! `baton_worker::http::fuzzing::{head, chunked}` for HTTP/1). Without
//! coverage feedback it finds less than `cargo fuzz`, but it runs anywhere,
//! in CI.
//!
//! The HTTP targets' fixtures are the request-smuggling corpus of the
//! process tests (`tests/src/smuggle_corpus.rs`, included here by path:
//! plain data) and `http::fuzzing::SEEDS`; their mutations add HTTP's
//! delimiters and framing words to the byte-level ones.
//!
//! A contract violation panics inside the harness; the runner catches it,
//! writes the input to `artifacts/fuzz_<target>/crash-<hash>` (replayable by
//! `cargo fuzz run fuzz_<target> <file>` and by this runner), and exits 1.
//!
//! ```text
//! smoke [--seconds N] [--target <protocol>|http_head|http_chunked|all]
//!       [--seed N] [--dir FUZZ_DIR] [--write-corpus]
//! ```
//!
//! `--write-corpus` (re)writes the seed corpus from the fixtures and exits.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use baton_worker::codec::{Protocol, fuzzing};
use baton_worker::http::fuzzing as http_fuzzing;

// The smuggling corpus: plain data, shared with the process tests.
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/src/smuggle_corpus.rs"]
mod smuggle_corpus;

/// What a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Harness {
    Codec(Protocol),
    HttpHead,
    HttpChunked,
}

/// Every target: one per registered RPC protocol, by its config name (so
/// a protocol added to the codec registry is fuzzed here with its own
/// fixtures as seeds, with no edit of this file), then the HTTP/1 ones.
fn targets() -> Vec<(&'static str, Harness)> {
    Protocol::ALL
        .iter()
        .map(|&p| (p.name(), Harness::Codec(p)))
        .chain([
            ("http_head", Harness::HttpHead),
            ("http_chunked", Harness::HttpChunked),
        ])
        .collect()
}

/// Bytes worth inserting into HTTP inputs: delimiters and framing words.
const HTTP_TOKENS: [&[u8]; 16] = [
    b"\r\n",
    b"\n",
    b"\r",
    b": ",
    b" ",
    b"\t",
    b",",
    b";",
    b"chunked",
    b"Transfer-Encoding: ",
    b"Content-Length: ",
    b"Connection: ",
    b"Host: ",
    b"0\r\n\r\n",
    b"ffffffff",
    b"HTTP/1.0",
];

/// Values worth planting in length fields.
const INTERESTING_U32: [u32; 9] = [
    0,
    1,
    3,
    4,
    0x7f,
    0xffff,
    0x00ff_ffff,
    0x7fff_ffff,
    0xffff_ffff,
];

struct Options {
    seconds: f64,
    targets: Vec<(&'static str, Harness)>,
    seed: u64,
    dir: PathBuf,
    write_corpus: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        seconds: 10.0,
        targets: targets(),
        seed: 0x5eed_ba70_0000_0001,
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        write_corpus: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--dir" => o.dir = PathBuf::from(value()?),
            "--write-corpus" => o.write_corpus = true,
            "--target" => {
                let t = value()?;
                o.targets = if t == "all" {
                    targets()
                } else {
                    let found = targets()
                        .into_iter()
                        .find(|(n, _)| *n == t || format!("fuzz_{n}") == t);
                    vec![found.ok_or(format!("unknown target {t}"))?]
                };
            }
            "-h" | "--help" => {
                return Err("smoke [--seconds N] [--target <protocol>|http_head|http_chunked|all] [--seed N] [--dir FUZZ_DIR] [--write-corpus]\n  protocols: every codec in the registry (bolt dubbo rocketmq tars …)".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    if options.write_corpus {
        return match write_corpus(&options.dir) {
            Ok(n) => {
                println!(
                    "wrote {n} seed files under {}",
                    options.dir.join("corpus").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("write corpus: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Panics are reported with their input below, not by the default hook.
    panic::set_hook(Box::new(|_| {}));
    let budget = Duration::from_secs_f64(options.seconds / options.targets.len() as f64);
    let started = Instant::now();
    for &(name, harness) in &options.targets {
        match run_target(&options, name, harness, budget) {
            Ok(stats) => println!(
                "fuzz_{name}: {} corpus files replayed, {} inputs, {} {} decoded, {:.1}s",
                stats.replayed,
                stats.inputs,
                stats.frames,
                match harness {
                    Harness::Codec(_) => "frames",
                    Harness::HttpHead => "heads",
                    Harness::HttpChunked => "complete bodies",
                },
                stats.elapsed.as_secs_f64()
            ),
            Err(crash) => {
                eprintln!("fuzz_{name}: CRASH: {crash}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("smoke passed in {:.1}s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

struct Stats {
    replayed: usize,
    inputs: u64,
    frames: u64,
    elapsed: Duration,
}

fn run_target(
    o: &Options,
    name: &str,
    harness: Harness,
    budget: Duration,
) -> Result<Stats, String> {
    let started = Instant::now();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut replayed = 0;
    let mut frames = 0u64;
    for sub in ["corpus", "artifacts"] {
        for input in read_dir_files(&o.dir.join(sub).join(format!("fuzz_{name}"))) {
            frames += run_one(o, name, harness, &input)? as u64;
            replayed += 1;
            if sub == "corpus" {
                seeds.push(input);
            }
        }
    }
    seeds.extend(builtin_seeds(harness).into_iter().map(|(_, seed)| seed));
    let mut rng = Rng(o.seed ^ hash(name.as_bytes()));
    let mut inputs = 0u64;
    while started.elapsed() < budget {
        // Check the clock every batch, not every input.
        for _ in 0..256 {
            let input = mutate(&mut rng, &seeds, harness);
            frames += run_one(o, name, harness, &input)? as u64;
            inputs += 1;
        }
    }
    Ok(Stats {
        replayed,
        inputs,
        frames,
        elapsed: started.elapsed(),
    })
}

fn run_one(o: &Options, name: &str, harness: Harness, input: &[u8]) -> Result<usize, String> {
    let run = || match harness {
        Harness::Codec(protocol) => fuzzing::decode_stream(protocol, input),
        Harness::HttpHead => usize::from(http_fuzzing::head(input)),
        Harness::HttpChunked => usize::from(http_fuzzing::chunked(input)),
    };
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(frames) => Ok(frames),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".to_owned());
            let dir = o.dir.join("artifacts").join(format!("fuzz_{name}"));
            let path = dir.join(format!("crash-{:016x}", hash(input)));
            let saved = fs::create_dir_all(&dir).and_then(|()| fs::write(&path, input));
            let where_ = match saved {
                Ok(()) => format!("input saved to {}", path.display()),
                Err(e) => format!("could not save the input ({e}): {}", hex(input)),
            };
            Err(format!("{message}; {where_}"))
        }
    }
}

/// The fixtures of a target, with their control byte, named for the seed
/// corpus: the codec's byte fixtures, or the smuggling corpus and the
/// HTTP seeds (for the chunked target, the bytes after each head).
fn builtin_seeds(harness: Harness) -> Vec<(String, Vec<u8>)> {
    let with_control = |control: u8, bytes: &[u8]| {
        let mut seed = vec![control];
        seed.extend_from_slice(bytes);
        seed
    };
    match harness {
        Harness::Codec(protocol) => protocol
            .fixtures()
            .iter()
            .map(|(name, bytes)| (name.to_string(), with_control(0, bytes)))
            .collect(),
        Harness::HttpHead => smuggle_corpus::cases()
            .iter()
            .map(|c| (c.name.to_string(), with_control(0, &c.bytes())))
            .chain(
                http_fuzzing::SEEDS
                    .iter()
                    .map(|(name, bytes)| (name.to_string(), bytes.to_vec())),
            )
            .collect(),
        Harness::HttpChunked => smuggle_corpus::cases()
            .iter()
            .filter_map(|c| {
                let bytes = c.bytes();
                let lower = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
                let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
                lower[..end]
                    .contains("chunked")
                    .then(|| (c.name.to_string(), with_control(0, &bytes[end..])))
            })
            .chain(
                http_fuzzing::SEEDS
                    .iter()
                    .filter(|(name, _)| name.contains("chunked-body"))
                    .map(|(name, bytes)| (name.to_string(), bytes.to_vec())),
            )
            .collect(),
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], harness: Harness) -> Vec<u8> {
    let pick = |rng: &mut Rng| &seeds[rng.below(seeds.len())];
    let mut data = if rng.below(16) == 0 {
        // Pure noise now and then.
        (0..rng.below(300)).map(|_| rng.next() as u8).collect()
    } else {
        pick(rng).clone()
    };
    for _ in 0..=rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
        }
        let at = rng.below(data.len());
        match rng.below(8) {
            0 => data[at] = rng.next() as u8,
            1 => data[at] ^= 1 << rng.below(8),
            2 => data.truncate(at.max(1)),
            3 => data.insert(at, rng.next() as u8),
            4 => {
                data.remove(at);
            }
            5 if matches!(harness, Harness::HttpHead | Harness::HttpChunked) => {
                // HTTP: a delimiter or a framing word.
                let token = HTTP_TOKENS[rng.below(HTTP_TOKENS.len())];
                let at = at.max(1);
                data.splice(at..at, token.iter().copied());
            }
            5 => {
                // Plant an interesting big-endian u32 (lengths, ids).
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())].to_be_bytes();
                for (i, b) in v.iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            6 => {
                // Splice: append (part of) another seed, minus its control byte.
                let other = pick(rng);
                let from = 1.min(other.len());
                let to = from + rng.below(other.len().saturating_sub(from) + 1);
                data.extend_from_slice(&other[from..to]);
            }
            _ => data[0] = rng.next() as u8, // the control byte: limit and chunking
        }
    }
    data
}

fn write_corpus(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for (target, harness) in targets() {
        let sub = dir.join("corpus").join(format!("fuzz_{target}"));
        fs::create_dir_all(&sub)?;
        for (name, seed) in builtin_seeds(harness) {
            // Control byte 0: default limits, first chunking seed.
            fs::write(sub.join(format!("{name}.bin")), &seed)?;
            n += 1;
            if let Harness::Codec(_) = harness {
                // Two frames back to back, split differently (control 0x5c).
                let mut twice = vec![0x5cu8];
                twice.extend_from_slice(&seed[1..]);
                twice.extend_from_slice(&seed[1..]);
                fs::write(sub.join(format!("{name}_x2.bin")), &twice)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.into_iter().filter_map(|p| fs::read(p).ok()).collect()
}

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a: stable names for crash files.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// xorshift64*: deterministic for a given `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
