//! Command-line interface: `serve` (default), `migrate`, `create-admin`, `create-project`,
//! `check-config`. Each command reads the same configuration as the server.

use crate::{
    config::{Config, EXIT_CONFIG, Env},
    services::accounts::{self, ProvisionError},
    startup::{self, StartupError},
    state::BackendPlan,
    store::{NewProject, Stores},
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "superinsights",
    version,
    about = "Self-hosted web analytics, wire-compatible with SuperInsights 1.x"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply SQLite migrations / create MongoDB indexes, then exit.
    Migrate,
    /// Create the platform admin with a workspace and a first project; prints the project keys.
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// At least 8 characters. Prefer SUPERINSIGHTS_ADMIN_PASSWORD to keep it out of shell history.
        #[arg(long, env = "SUPERINSIGHTS_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "My First Project")]
        project: String,
    },
    /// Create a project in the workspace of an existing user; prints its id and keys.
    CreateProject {
        /// Email of the user whose (first) workspace gets the project.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
    },
    /// Print the effective configuration (secrets redacted) and the backend of each piece.
    CheckConfig,
    /// Fill a new project ("Demo") in a user's workspace with realistic demo data.
    SeedDemo {
        /// Email of the user whose workspace gets the demo project.
        #[arg(long)]
        owner: String,
        /// How many documents to write (page views, events, errors, web vitals together).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Spread the data over this many days before now.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Random seed (the same seed gives the same data).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let config = match Config::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            init_tracing(false);
            tracing::error!("configuration error: {e}");
            say(&format!("configuration error: {e}"));
            return EXIT_CONFIG;
        }
    };
    init_tracing(config.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("cannot start the async runtime: {e}"));
            return 1;
        }
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    match result {
        Ok(()) => 0,
        Err(CliError::Startup(StartupError::Config(e))) => {
            say(&format!("configuration error: {e}"));
            EXIT_CONFIG
        }
        Err(e) => {
            tracing::error!("{e}");
            say(&format!("error: {e}"));
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("{0}")]
    Other(String),
}

/// A line on stderr for whoever started the process; dropped when stderr cannot take it (a
/// failed write must never panic, see `init_tracing`).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `info` and up by default (`RUST_LOG` overrides), as text or, with `LOG_FORMAT=json`, one
/// JSON object per line.
fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A log line that cannot be written (stderr closed, its disk full) is dropped. With internal
    // error logging on, tracing-subscriber reports the failure with `eprintln!`, which panics
    // when stderr fails too, killing whatever task logged — the ingest writer included.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let stores = Stores::open(&config).await.map_err(StartupError::from)?;
            println!("migrations applied ({})", stores.name);
            Ok(())
        }
        Command::CreateAdmin {
            email,
            password,
            project,
        } => {
            let stores = Stores::open(&config).await.map_err(StartupError::from)?;
            let p = accounts::provision(
                &stores,
                &email,
                &password,
                crate::domain::records::PlatformRole::Admin,
                &project,
            )
            .await?;
            println!("admin:          {}", p.user.email);
            println!("workspace:      {} ({})", p.org.name, p.org.id);
            print_project(&p.project);
            Ok(())
        }
        Command::CreateProject { owner, name } => {
            let stores = Stores::open(&config).await.map_err(StartupError::from)?;
            let project = create_project_for(&stores, &owner, &name).await?;
            print_project(&project);
            Ok(())
        }
        Command::SeedDemo {
            owner,
            events,
            days,
            seed,
        } => {
            let stores = Stores::open(&config).await.map_err(StartupError::from)?;
            let project = create_project_for(&stores, &owner, "Demo").await?;
            let started = std::time::Instant::now();
            let s = crate::services::demo::seed(&stores, project.id, events, days, seed)
                .await
                .map_err(StartupError::from)?;
            print_project(&project);
            println!(
                "seeded:         {} page views, {} events, {} errors, {} web-vitals records in {:.1} s",
                s.pageviews,
                s.events,
                s.errors,
                s.performance,
                started.elapsed().as_secs_f64()
            );
            let warming = std::time::Instant::now();
            crate::services::demo::warm_up(&stores, project.id)
                .await
                .map_err(StartupError::from)?;
            println!(
                "rollups built:  {:.1} s (the first dashboard view is now as fast as the next)",
                warming.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::CheckConfig => {
            println!("{config:#?}");
            println!();
            for (piece, backend) in BackendPlan::from_config(&config).pieces {
                println!("{piece:>14}: {backend}");
            }
            Ok(())
        }
    }
}

/// A new project in the first workspace the user with this email owns.
async fn create_project_for(
    stores: &Stores,
    owner: &str,
    name: &str,
) -> Result<crate::store::Project, CliError> {
    let user = stores
        .accounts
        .user_by_email(owner)
        .await
        .map_err(StartupError::from)?
        .ok_or_else(|| CliError::Other(format!("no user with email {owner}")))?;
    let org = first_org_of(stores, &user).await?;
    Ok(stores
        .projects
        .create_project(NewProject::named(name, org))
        .await
        .map_err(StartupError::from)?)
}

/// The first workspace the user owns (the one created with the account).
async fn first_org_of(
    stores: &Stores,
    user: &crate::store::User,
) -> Result<crate::domain::ids::DocId, CliError> {
    let memberships = stores
        .accounts
        .memberships(user.id)
        .await
        .map_err(StartupError::from)?;
    memberships
        .into_iter()
        .find(|(_, role)| *role == crate::domain::records::OrgRole::Owner)
        .map(|(org, _)| org.id)
        .ok_or_else(|| CliError::Other(format!("{} owns no workspace", user.email)))
}

fn print_project(p: &crate::store::Project) {
    println!("project:        {} ({})", p.name, p.id);
    println!("public key:     {}", p.public_api_key);
    println!("secret key:     {}", p.secret_api_key);
}

async fn serve(config: Config) -> Result<(), CliError> {
    let addr = config.listen_addr();
    let app = startup::build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Other(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(
        "listening on http://{}",
        listener
            .local_addr()
            .map_err(|e| CliError::Other(e.to_string()))?
    );
    app.serve(listener, startup::shutdown_signal())
        .await
        .map_err(|e| CliError::Other(e.to_string()))
}
