//! Compiling untrusted modules without risking the node, and caching what was compiled.
//!
//! Compilation runs in a child process (the `platform` binary's compile worker) that caps its
//! own CPU time and address space before reading the module; the parent adds a wall-clock
//! timeout. A pathological module therefore costs at most those limits, and a crash in the
//! compiler takes down only the child.
//!
//! Artifacts are cached at `<dir>/<module>-<engine compatibility>-<config>.cwasm`, written
//! atomically, and loaded by mmap. Each carries a keyed blake3 MAC under a secret that only this
//! node holds (`<dir>/mac.key`, mode 0600), so the node never deserializes an artifact it did not
//! compile itself: deserializing trusts the bytes completely.

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use platform_primitives::Hash;
use wasmtime::{Engine, Module};

use crate::exec::{LoadError, LoadedModule, Runtime};
use crate::validate::validate;

/// Resource limits of one compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileLimits {
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space, bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Wall-clock timeout, after which the child is killed.
    pub wall: Duration,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            cpu_seconds: 60,
            memory_bytes: 4 << 30,
            wall: Duration::from_secs(120),
        }
    }
}

/// Where compilation happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compiler {
    /// In this process: for trusted modules (tests, benchmarks of our own examples).
    InProcess,
    /// In a child: `program args… --cpu-seconds N --memory-bytes M --policy HEX` (the
    /// runtime's policy, Borsh, which decides the engine's configuration), module on stdin,
    /// artifact on stdout.
    Subprocess {
        /// The worker program (normally the `platform` binary itself).
        program: PathBuf,
        /// Arguments that select the worker.
        args: Vec<String>,
        /// Limits.
        limits: CompileLimits,
    },
}

/// How a load went, for metrics and `platform bench` (never consensus).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Served from the on-disk cache.
    pub cache_hit: bool,
    /// Time spent compiling, if compiled.
    pub compile: Duration,
    /// Total time of the load.
    pub total: Duration,
}

/// The on-disk artifact cache.
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

fn io_err(path: &Path, e: std::io::Error) -> LoadError {
    LoadError::Compile(format!("{}: {e}", path.display()))
}

impl ArtifactCache {
    /// Opens (creating) a cache folder and its node-local MAC key.
    pub fn open(dir: &Path) -> Result<ArtifactCache, LoadError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let key_path = dir.join("mac.key");
        let key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                let mut key = [0u8; 32];
                File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut key))
                    .map_err(|e| io_err(&key_path, e))?;
                // Whole or not at all: a torn key would void every cached artifact, and two
                // processes opening the cache at once must not see each other's half key.
                let tmp = key_path.with_extension(format!("tmp{}", std::process::id()));
                let _ = fs::remove_file(&tmp);
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| io_err(&tmp, e))?;
                f.write_all(&key)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io_err(&tmp, e))?;
                // Published only if no other process published one first (a torn file from
                // before is replaced); otherwise theirs is the key.
                if fs::read(&key_path).is_ok_and(|b| b.len() != 32) {
                    let _ = fs::remove_file(&key_path);
                }
                let linked = fs::hard_link(&tmp, &key_path);
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => key,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let theirs = fs::read(&key_path).map_err(|e| io_err(&key_path, e))?;
                        theirs.try_into().map_err(|_| {
                            LoadError::Compile(format!("{}: not a 32-byte key", key_path.display()))
                        })?
                    }
                    Err(e) => return Err(io_err(&key_path, e)),
                }
            }
        };
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            key,
        })
    }

    fn path(&self, module: &Hash, engine: &Engine, config: &[u8; 32]) -> PathBuf {
        let mut h = Blake3Hasher(blake3::Hasher::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        let compat = h.0.finalize();
        self.dir.join(format!(
            "{}-{}-{}.cwasm",
            module.to_hex(),
            &compat.to_hex()[..16],
            &hex::encode(config)[..16]
        ))
    }

    fn mac(&self, artifact: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, artifact).as_bytes()
    }

    /// The artifact at `path`, if present and made by this node.
    fn verified(&self, path: &Path) -> bool {
        let (Ok(artifact), Ok(mac)) = (fs::read(path), fs::read(path.with_extension("mac"))) else {
            return false;
        };
        mac == self.mac(&artifact)
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> Result<(), LoadError> {
        // Each write has a temporary file of its own: two loads of one module (two runtimes
        // of a node sharing the cache) once shared `<name>.tmp`, so one truncated or renamed
        // the other's half-written file, and an evaluation failed on a missing MAC or a torn
        // artifact.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let write = |p: &Path, bytes: &[u8]| -> Result<(), LoadError> {
            let tmp = p.with_extension(format!(
                "tmp{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err(&tmp, e))?;
            fs::rename(&tmp, p).map_err(|e| io_err(p, e))
        };
        write(path, artifact)?;
        write(&path.with_extension("mac"), &self.mac(artifact))
    }
}

/// Feeds std's `Hash` into blake3, for wasmtime's compatibility hash.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        u64::from_le_bytes(
            self.0.finalize().as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        )
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn compile_in_child(
    program: &Path,
    args: &[String],
    limits: CompileLimits,
    policy: &crate::policy::Policy,
    bytes: &[u8],
) -> Result<Vec<u8>, LoadError> {
    let mut child = Command::new(program)
        .args(args)
        .args([
            "--cpu-seconds",
            &limits.cpu_seconds.to_string(),
            "--memory-bytes",
            &limits.memory_bytes.to_string(),
            "--policy",
            &hex::encode(borsh::to_vec(policy).expect("a policy serializes")),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            LoadError::Compile(format!(
                "cannot start the compile worker {}: {e}",
                program.display()
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| LoadError::Compile(e.to_string()))?
        {
            break status;
        }
        if started.elapsed() > limits.wall {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LoadError::Compile(format!(
                "compilation exceeded its wall-clock limit of {} s and was stopped",
                limits.wall.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let artifact = reader
        .join()
        .expect("reader thread")
        .map_err(|e| LoadError::Compile(e.to_string()))?;
    let stderr = err_reader.join().unwrap_or_default();
    if status.success() {
        return Ok(artifact);
    }
    use std::os::unix::process::ExitStatusExt;
    let why = match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => format!(
            "compilation exceeded its CPU limit of {} s",
            limits.cpu_seconds
        ),
        Some(sig) => format!("the compile worker died with signal {sig}"),
        None if stderr.contains("memory") || stderr.contains("alloc") => {
            format!(
                "compilation exceeded its memory limit of {} MiB",
                limits.memory_bytes >> 20
            )
        }
        None => format!("compilation failed: {}", stderr.trim()),
    };
    Err(LoadError::Compile(why))
}

impl Runtime {
    /// Validates, compiles (with `compiler`, through `cache`) and loads a module.
    pub fn load_with(
        &self,
        bytes: &[u8],
        compiler: &Compiler,
        cache: Option<&ArtifactCache>,
    ) -> Result<(Arc<LoadedModule>, LoadStats), LoadError> {
        let started = Instant::now();
        let hit = |m| {
            let stats = LoadStats {
                cache_hit: true,
                compile: Duration::ZERO,
                total: started.elapsed(),
            };
            Ok((m, stats))
        };
        let hash = Hash::of(bytes);
        if let Some(m) = self.cached(&hash) {
            return hit(m);
        }
        // One load of a module at a time in this runtime: a concurrent load of the same
        // module waits for the first and takes its result from memory instead of compiling
        // it again (an evaluation burst at an epoch's start once compiled one module per
        // submission, all at once).
        let _loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = self.cached(&hash) {
            return hit(m);
        }
        let info = validate(bytes, self.policy())?;
        let config = crate::engine::config_hash(self.policy());
        let path = cache.map(|c| c.path(&hash, self.engine(), &config));
        if let (Some(c), Some(p)) = (cache, &path)
            && c.verified(p)
        {
            // SAFETY: the artifact carries this node's MAC, so this node compiled it with an
            // engine of the same compatibility hash and configuration (both in the file name);
            // wasmtime re-checks compatibility on load.
            let module = unsafe { Module::deserialize_file(self.engine(), p) }
                .map_err(|e| LoadError::Compile(e.to_string()))?;
            return hit(self.insert(hash, info, module)?);
        }
        let compile_start = Instant::now();
        let artifact = match compiler {
            Compiler::InProcess => self
                .engine()
                .precompile_module(bytes)
                .map_err(|e| LoadError::Compile(e.to_string()))?,
            Compiler::Subprocess {
                program,
                args,
                limits,
            } => compile_in_child(program, args, *limits, self.policy(), bytes)?,
        };
        let compile = compile_start.elapsed();
        let module = match (cache, &path) {
            (Some(c), Some(p)) => {
                c.store(p, &artifact)?;
                // SAFETY: compiled just now by this node (in-process or by its own worker).
                unsafe { Module::deserialize_file(self.engine(), p) }
            }
            // SAFETY: as above.
            _ => unsafe { Module::deserialize(self.engine(), &artifact) },
        }
        .map_err(|e| LoadError::Compile(e.to_string()))?;
        let loaded = self.insert(hash, info, module)?;
        Ok((
            loaded,
            LoadStats {
                cache_hit: false,
                compile,
                total: started.elapsed(),
            },
        ))
    }
}

/// How a validator turns a module's bytes into a loaded module: a compiler (a bounded child
/// process for the untrusted modules a network runs) and the artifact cache it fills.
#[derive(Clone)]
pub struct ModuleLoader {
    compiler: Compiler,
    cache: Option<Arc<ArtifactCache>>,
}

impl std::fmt::Debug for ModuleLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleLoader")
            .field("compiler", &self.compiler)
            .field("cache", &self.cache.as_ref().map(|c| c.dir.clone()))
            .finish()
    }
}

impl ModuleLoader {
    /// A loader compiling with `compiler`, caching artifacts in `cache` if given.
    pub fn new(compiler: Compiler, cache: Option<Arc<ArtifactCache>>) -> ModuleLoader {
        ModuleLoader { compiler, cache }
    }

    /// Compiles in this process without a cache: for trusted modules (tests, tools).
    pub fn in_process() -> ModuleLoader {
        ModuleLoader::new(Compiler::InProcess, None)
    }

    /// Loads `bytes` into `rt` (see [`Runtime::load_with`]).
    pub fn load(&self, rt: &Runtime, bytes: &[u8]) -> Result<Arc<LoadedModule>, LoadError> {
        rt.load_with(bytes, &self.compiler, self.cache.as_deref())
            .map(|(m, _)| m)
    }
}

/// The compile worker's body: caps its own resources, reads a module from stdin, writes the
/// compiled artifact to stdout. Runs in a child process started by [`Compiler::Subprocess`].
pub fn compile_worker(limits: CompileLimits, policy: &crate::policy::Policy) -> Result<(), String> {
    // SAFETY: setrlimit on our own process with valid, initialized structs.
    unsafe {
        let cpu = libc::rlimit {
            rlim_cur: limits.cpu_seconds,
            rlim_max: limits.cpu_seconds + 1,
        };
        let mem = libc::rlimit {
            rlim_cur: limits.memory_bytes,
            rlim_max: limits.memory_bytes,
        };
        if libc::setrlimit(libc::RLIMIT_CPU, &cpu) != 0
            || libc::setrlimit(libc::RLIMIT_AS, &mem) != 0
        {
            return Err(format!(
                "cannot set compile limits: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(u64::from(policy.max_module_bytes) + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the module: {e}"))?;
    validate(&bytes, policy).map_err(|e| e.to_string())?;
    // The same configuration as the runtime, allocating on demand: the pool's reservations are
    // not needed to compile and would not fit under the address-space limit.
    let engine = crate::engine::engine(crate::engine::Allocation::OnDemand, policy)?;
    let artifact = engine
        .precompile_module(&bytes)
        .map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&artifact)
        .map_err(|e| format!("writing the artifact: {e}"))
}
