use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use confab_server::admin;
use confab_server::cluster::Published;
use confab_server::config::{AdminCommand, Command, Config, LogFormat};
use confab_server::hub::Sessions;
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
            AdminCommand::Users { query } => admin_users(&config, query.as_deref()),
            AdminCommand::Disable { username } => admin_disable(&config, &username, true),
            AdminCommand::Enable { username } => admin_disable(&config, &username, false),
            AdminCommand::ResetPassword { username } => admin_reset_password(&config, &username),
            AdminCommand::Grant { username } => admin_grant(&config, &username, true),
            AdminCommand::Revoke { username } => admin_grant(&config, &username, false),
            AdminCommand::Rooms => admin_rooms(&config),
            AdminCommand::DeleteRoom { room } => admin_delete_room(&config, &room),
            AdminCommand::Stats => admin_stats(&config),
            AdminCommand::Audit => admin_audit(&config),
        })
        .await
        .context("the admin command failed")?;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("confab_server=info,warn"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // One object per line: time, level, target, message, fields (see json_log).
        LogFormat::Json => {
            confab_server::logsafe::inside_json_strings();
            tracing_subscriber::fmt()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(confab_server::json_log::JsonLines)
                .with_env_filter(filter)
                .init();
        }
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

/// `confab-server admin users [QUERY]`: a table of accounts.
fn admin_users(config: &Config, query: Option<&str>) -> anyhow::Result<()> {
    let (accounts, _) = open_accounts(config)?;
    let users = admin::users(&accounts, query.unwrap_or(""))?;
    println!(
        "{:<24} {:<24} {:<5} {:<8} {:<20} LAST SIGN-IN",
        "USERNAME", "DISPLAY NAME", "ADMIN", "DISABLED", "CREATED"
    );
    for u in &users {
        println!(
            "{:<24} {:<24} {:<5} {:<8} {:<20} {}",
            u.username,
            u.display_name,
            if u.admin { "yes" } else { "no" },
            if u.disabled { "yes" } else { "no" },
            admin::utc(u.created_at),
            u.last_seen.map_or_else(|| "-".to_owned(), admin::utc),
        );
    }
    println!(
        "{} account{}",
        users.len(),
        if users.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `confab-server admin disable|enable NAME`. Disabling ends the account's sessions in
/// the store; a server running on this data directory closes its sockets at once.
fn admin_disable(config: &Config, name: &str, disabled: bool) -> anyhow::Result<()> {
    use confab_server::admin::control::{Request, ask};

    let (accounts, _) = open_accounts(config)?;
    let name = admin::set_disabled(&accounts, admin::Actor::Cli, name, disabled)?;
    if !disabled {
        println!("Enabled {name}: they can sign in again");
        return Ok(());
    }
    println!("Disabled {name}: they cannot sign in, and their sessions are ended");
    match ask(
        &config.data_dir,
        &Request::Disabled {
            username: name.clone(),
        },
    ) {
        Ok(Some(reply)) if reply.ok => println!("The running server {}", reply.message),
        Ok(Some(reply)) => println!("The running server refused: {}", reply.message),
        Ok(None) if config.redis_url.is_some() => tell_cluster(
            config,
            &Published::SignedOut {
                username: name,
                sessions: Sessions::All,
            },
            "were told to close their sockets",
            "their open connections close when they next authenticate",
        ),
        Ok(None) => println!(
            "No server is running on {} (open connections elsewhere close when they next \
             authenticate)",
            config.data_dir.display()
        ),
        Err(e) => println!("Could not reach the running server: {e}"),
    }
    Ok(())
}

/// With no node on this machine's data directory: tells a cluster's nodes through its
/// Redis (`--redis-url`) what the command changed, and says how many heard it.
/// `done` says what they did; `otherwise` what happens if Redis cannot be reached.
fn tell_cluster(config: &Config, news: &Published, done: &str, otherwise: &str) {
    let Some(url) = config.redis_url.as_deref() else {
        return;
    };
    match confab_server::cluster::notice::tell_nodes(url, news) {
        Ok(0) => println!("No node of the cluster is running (Redis has no subscriber)"),
        Ok(nodes) => println!(
            "{nodes} running node{} of the cluster {done}",
            if nodes == 1 { "" } else { "s" }
        ),
        Err(e) => println!("Could not tell the cluster through Redis ({e}): {otherwise}"),
    }
}

/// `confab-server admin reset-password NAME`: prints a one-time link's path.
fn admin_reset_password(config: &Config, name: &str) -> anyhow::Result<()> {
    let (accounts, _) = open_accounts(config)?;
    let link = admin::reset_link(
        &accounts,
        admin::Actor::Cli,
        name,
        config.password_reset_lifetime(),
    )?;
    println!(
        "Password reset link for {} (works once, until {}):\n{}\n\
         Put it after the server's address, as in https://chat.example.com{}",
        link.username,
        admin::utc(link.expires_at),
        link.path,
        link.path,
    );
    Ok(())
}

/// `confab-server admin grant|revoke NAME`.
fn admin_grant(config: &Config, name: &str, grant: bool) -> anyhow::Result<()> {
    let (accounts, _) = open_accounts(config)?;
    let name = admin::set_admin(&accounts, admin::Actor::Cli, name, grant)?;
    if grant {
        println!("{name} is an administrator");
    } else {
        println!("{name} is no longer an administrator");
    }
    Ok(())
}

/// `confab-server admin rooms`: a table of rooms and their sizes.
fn admin_rooms(config: &Config) -> anyhow::Result<()> {
    let (accounts, _) = open_accounts(config)?;
    let rooms = admin::rooms(&accounts)?;
    println!(
        "{:<32} {:<8} {:>8} {:>9} LAST ACTIVITY",
        "ROOM", "KIND", "MEMBERS", "MESSAGES"
    );
    for r in &rooms {
        let name = match &r.title {
            Some(title) if title != &r.name => format!("{} ({title})", r.name),
            _ => r.name.clone(),
        };
        println!(
            "{name:<32} {:<8} {:>8} {:>9} {}",
            r.kind,
            r.members,
            r.messages,
            r.last_activity.map_or_else(|| "-".to_owned(), admin::utc),
        );
    }
    Ok(())
}

/// `confab-server admin delete-room NAME`: through the running server's hub when there
/// is one on this data directory (its members see the room go), else in the store.
fn admin_delete_room(config: &Config, room: &str) -> anyhow::Result<()> {
    use confab_server::admin::control::{Request, ask};

    let (accounts, _) = open_accounts(config)?;
    let asked = ask(
        &config.data_dir,
        &Request::DeleteRoom {
            room: room.to_owned(),
        },
    )
    .context("cannot reach the server running on the data directory")?;
    match asked {
        Some(reply) if reply.ok => {
            admin::record(&accounts, admin::Actor::Cli, "delete-room", room, "")?;
            println!("Deleted room {room} (the running server told its members)");
            Ok(())
        }
        Some(reply) => anyhow::bail!("the running server did not delete it: {}", reply.message),
        None => {
            // No server here: none may start while the room goes (SQLite's data
            // directory lock), and no hub holds it.
            let _lock = match config.database_url {
                Some(_) => None,
                None => Some(
                    confab_server::store::sqlite::lock_data_dir(&config.data_dir, true)
                        .context("a server is using the data directory but does not answer")?,
                ),
            };
            anyhow::ensure!(
                room != confab_shared::DEFAULT_ROOM,
                "#{room} cannot be deleted"
            );
            anyhow::ensure!(
                admin::rooms(&accounts)?.iter().any(|r| r.name == room),
                "no room is called {room:?}"
            );
            let database = config.database().context("cannot open the database")?;
            let mut store = database.writer().context("cannot open the store")?;
            store.apply(&[confab_server::store::Write::DeleteRoom {
                room: room.to_owned(),
            }])?;
            admin::record(&accounts, admin::Actor::Cli, "delete-room", room, "")?;
            println!("Deleted room {room}");
            tell_cluster(
                config,
                &Published::RoomChanged {
                    room: room.to_owned(),
                },
                "were told to drop it",
                "running nodes drop it at their next look at the database",
            );
            Ok(())
        }
    }
}

/// `confab-server admin stats`.
fn admin_stats(config: &Config) -> anyhow::Result<()> {
    let (accounts, place) = open_accounts(config)?;
    let s = admin::stats(&accounts)?;
    println!("Server statistics ({place}):");
    println!(
        "  accounts         {:>12} ({} disabled)",
        s.users, s.disabled_users
    );
    println!("  rooms            {:>12}", s.rooms);
    println!("  messages         {:>12}", s.messages);
    println!("  files            {:>12}", s.files);
    println!("  file bytes       {:>12}", s.file_bytes);
    println!("  database bytes   {:>12}", s.database_bytes);
    Ok(())
}

/// `confab-server admin audit`: newest first.
fn admin_audit(config: &Config) -> anyhow::Result<()> {
    let (accounts, _) = open_accounts(config)?;
    println!(
        "{:<20} {:<24} {:<16} {:<24} DETAIL",
        "WHEN", "WHO", "WHAT", "TARGET"
    );
    for e in admin::audit(&accounts)? {
        println!(
            "{:<20} {:<24} {:<16} {:<24} {}",
            admin::utc(e.at),
            e.actor,
            e.action,
            e.target,
            e.detail
        );
    }
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
