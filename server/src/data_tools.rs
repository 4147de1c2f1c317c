//! The subcommands that copy a server's data out and back in: `backup`, `restore`
//! ([`crate::backup`]), `export` and `import` (`store::sqlite::history`). They work on
//! the embedded store of `--data-dir`; with `--database-url` they refuse and say which
//! PostgreSQL tool does the job, since PostgreSQL's own tools back it up better than
//! anything here could (consistent, online, point-in-time with WAL archiving); `export`
//! alone also reads a cluster's database (`store::postgres::history`).

use std::{
    io::{BufReader, BufWriter, Write},
    path::Path,
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{
    backup::{self, Pace},
    config::{Command, Config},
    store::{
        history::{Exported, FileLine},
        sqlite::{
            DataDirLock,
            history::{self, FileSource},
            lock_data_dir,
        },
    },
};

/// What to use instead on PostgreSQL.
const POSTGRES_ADVICE: &str = "with --database-url everything (messages, accounts, files) is in \
     PostgreSQL: back it up with PostgreSQL's tools, pg_dump for a logical copy (restore it with \
     pg_restore into an empty database) or pg_basebackup with WAL archiving for point-in-time \
     recovery; these commands work on the embedded store of --data-dir";

/// Runs `command` (one of the four above). Blocking.
pub fn run(config: &Config, command: Command) -> anyhow::Result<()> {
    if let Some(url) = &config.database_url {
        return match command {
            Command::Export { room, output } => export(&output, |out| {
                crate::store::postgres::history::export(url, room.as_deref(), out)
            }),
            Command::Import { .. } => bail!(
                "import works on the embedded store of --data-dir only: on a cluster the \
                 nodes keep each room's position in memory. Import into a data directory, \
                 then move it with `admin migrate-to-postgres` into an empty database"
            ),
            _ => bail!("{POSTGRES_ADVICE}"),
        };
    }
    let data_dir = &config.data_dir;
    match command {
        Command::Backup {
            dest,
            step_pages,
            step_pause_ms,
        } => {
            let pace = Pace {
                pages_per_step: step_pages,
                pause: Duration::from_millis(step_pause_ms),
            };
            let started = std::time::Instant::now();
            let made = backup::backup(data_dir, &dest, pace)?;
            println!(
                "Backed up {} into {} in {:.1} s: database {} bytes (integrity ok), {} files \
                 ({} bytes), device cookie key {}",
                data_dir.display(),
                dest.display(),
                started.elapsed().as_secs_f64(),
                made.database_bytes,
                made.files,
                made.file_bytes,
                if made.device_key { "copied" } else { "none" },
            );
            if !made.missing_files.is_empty() {
                println!(
                    "{} files were removed by the server while the backup ran (their messages \
                     were deleted after the snapshot); the manifest lists them",
                    made.missing_files.len()
                );
            }
        }
        Command::Restore { src, force } => {
            let restored = backup::restore(&src, data_dir, force)?;
            println!(
                "Restored the backup of {} taken at {} ms into {}: database {} bytes \
                 (integrity ok), {} files",
                restored.manifest.source,
                restored.manifest.taken_at_ms,
                data_dir.display(),
                restored.manifest.database_bytes,
                restored.manifest.files,
            );
            if let Some(aside) = restored.moved_aside {
                println!(
                    "What was in {} is now in {}",
                    data_dir.display(),
                    aside.display()
                );
            }
        }
        Command::Export { room, output } => {
            export(&output, |out| {
                history::export(data_dir, room.as_deref(), out)
            })?;
        }
        Command::Import { file, files_from } => {
            let _lock = lock_data_dir(data_dir, true).map_err(|e| match e {
                DataDirLock::InUse(dir) => anyhow::anyhow!(
                    "{} is in use by a running server (or a backup): stop it first",
                    dir.display()
                ),
                other => other.into(),
            })?;
            let input = BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            );
            let source = files_from.map(FilesIn);
            let imported = history::import(
                data_dir,
                input,
                source.as_ref().map(|s| s as &dyn FileSource),
            )?;
            println!(
                "Imported {} into {}: {imported}",
                file.display(),
                data_dir.display()
            );
        }
        Command::Admin(_) => bail!("not a data command"),
    }
    Ok(())
}

/// Runs an export into `output` (standard output when `None`) and says what it wrote.
fn export(
    output: &Option<std::path::PathBuf>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<Exported>,
) -> anyhow::Result<()> {
    let exported = match output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let exported = write(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            exported
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let exported = write(&mut out)?;
            out.flush()?;
            exported
        }
    };
    eprintln!(
        "Exported {} rooms and {} messages",
        exported.rooms, exported.messages
    );
    Ok(())
}

/// The files of a data directory or backup, for `import --files-from`.
struct FilesIn(std::path::PathBuf);

impl FileSource for FilesIn {
    fn fetch(&self, file: &FileLine, data_dir: &Path) -> anyhow::Result<bool> {
        backup::copy_stored(&self.0, data_dir, &file.sha256, file.size)
    }
}
