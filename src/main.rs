use clap::Parser;

fn main() -> std::process::ExitCode {
    // Whatever herald or a library it uses creates (the SQLite file and its
    // -wal/-shm, outbox mail holding live links) is readable by herald's
    // user only. The store and the outbox set their modes outright too.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = herald::cli::Cli::parse();
    herald::cli::init_tracing();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // A worker process (scheduler and delivery) drives its connections
    // from one thread. With one thread per core, copies and replies handed
    // between threads cost the worker ~30% more CPU per message (bench
    // send, concurrency 8), taken from the SMTP server or database sharing
    // the machine. RSA signing still uses every core (the blocking pool);
    // HERALD_WORKER_THREADS overrides this.
    if matches!(
        cli.command,
        herald::cli::Command::Serve {
            role: herald::startup::Role::Worker
        }
    ) {
        builder.worker_threads(1);
    }
    if let Ok(raw) = std::env::var("HERALD_WORKER_THREADS") {
        match raw.trim().parse::<usize>() {
            Ok(n) if n > 0 => {
                builder.worker_threads(n);
            }
            _ => {
                eprintln!(
                    "herald: HERALD_WORKER_THREADS must be a positive whole number, not {raw:?}"
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(herald::cli::run(cli));
    // Work left on the blocking pool (a feed item being cleaned) must not
    // hold the exit past the shutdown deadline.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
