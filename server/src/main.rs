use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use confab_server::config::{AdminCommand, Command, Config, LogFormat};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(
        command @ (Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Export { .. }
        | Command::Import { .. }),
    ) = config.command.clone()
    {
        return tokio::task::spawn_blocking(move || {
            confab_server::data_tools::run(&config, command)
        })
        .await
        .context("the command failed")?;
    }
    if let Some(Command::Admin(admin)) = config.command.clone() {
        // Off the runtime: the PostgreSQL client is synchronous, and must not run on it.
        return tokio::task::spawn_blocking(move || match admin {
            AdminCommand::Create {
                username,
                display_name,
            } => admin_create(&config, &username, display_name.as_deref()),
            AdminCommand::Invite { uses, expires_in } => admin_invite(&config, uses, expires_in),
            AdminCommand::MigrateToPostgres => migrate_to_postgres(&config),
        })
        .await
        .context("the admin command failed")?;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("confab_server=info,warn"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // One object per line: timestamp, level, target, fields (message included),
        // and the spans (an HTTP request's `request_id`).
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter)
            .init(),
    }
    confab_server::logsafe::escape_panic_messages();

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let scheme = if config.tls_files().is_some() {
        "https"
    } else {
        "http"
    };
    match config.log_format {
        LogFormat::Text => println!("Confab is running: open {}", browse_url(scheme, addr)),
        // Every line of the output is then one JSON object, this one too.
        LogFormat::Json => tracing::info!("Confab is running: open {}", browse_url(scheme, addr)),
    }
    confab_server::serve(listener, config, shutdown_signal()).await
}

/// `confab-server admin create`: an administrator account, made from the machine the
/// data lives on rather than by whoever reaches the sign-up page first.
fn admin_create(config: &Config, username: &str, display_name: Option<&str>) -> anyhow::Result<()> {
    use confab_shared::{DisplayName, Password, Username};
    use std::io::{BufRead, IsTerminal};

    let username = Username::parse(username)?;
    let display_name = DisplayName::parse(display_name.unwrap_or(username.as_str()))?;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {}: ", username.as_str()))?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    let password = Password::parse(&password)?;
    {
        use confab_server::accounts::common_passwords;
        anyhow::ensure!(
            !common_passwords::is_common(password.as_str()),
            common_passwords::REFUSAL
        );
    }
    let (accounts, place) = open_accounts(config)?;
    let user = accounts.sign_up(&username, &display_name, &password, true)?;
    println!(
        "Created administrator {} ({}) in {place}",
        user.username, user.display_name,
    );
    Ok(())
}

/// `confab-server admin invite`: an invite link made from the machine the data lives on
/// (the first invite of a `--sign-up invite` server, typically). The server's public
/// address is not known here, so it prints the link's path to put after it.
fn admin_invite(
    config: &Config,
    uses: Option<u32>,
    expires_in: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    use confab_server::invites;

    let limits = config.invite_limits();
    let (uses, lifetime) = invites::check_request(uses, expires_in, limits)?;
    let (accounts, _) = open_accounts(config)?;
    let (_, token) = accounts.create_invite(None, uses, lifetime, limits)?;
    let path = token.path();
    println!(
        "Invite link ({uses} {}, good for {}):\n{path}\n\
         Put it after the server's address, as in https://chat.example.com{path}",
        if uses == 1 { "use" } else { "uses" },
        invites::describe(lifetime),
    );
    Ok(())
}

/// `confab-server admin migrate-to-postgres`: the data directory's SQLite store into
/// the empty PostgreSQL of `--database-url` (see `store::to_postgres`).
fn migrate_to_postgres(config: &Config) -> anyhow::Result<()> {
    let Some(url) = &config.database_url else {
        anyhow::bail!("--database-url is needed: the PostgreSQL database to copy into");
    };
    let summary = confab_server::store::to_postgres::migrate(&config.data_dir, url)?;
    println!(
        "Copied the store in {} into PostgreSQL:\n{summary}",
        config.data_dir.display()
    );
    Ok(())
}

/// The accounts of the database the flags name (the data directory's SQLite file, or
/// the PostgreSQL of `--database-url`), and where that is, for messages.
fn open_accounts(config: &Config) -> anyhow::Result<(confab_server::accounts::Accounts, String)> {
    let database = config.database().context("cannot open the database")?;
    let place = database.describe();
    let accounts = confab_server::accounts::Accounts::open(&database)
        .with_context(|| format!("cannot open the accounts in {place}"))?;
    Ok((accounts, place))
}

/// The URL a person on this machine opens; a wildcard address is reachable as localhost.
fn browse_url(scheme: &str, addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("{scheme}://localhost:{}/", addr.port())
    } else {
        format!("{scheme}://{addr}/")
    }
}

/// Resolves on Ctrl-C or SIGTERM (what systemd and container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
