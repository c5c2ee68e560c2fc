//! The two kinds of failure a user sees, and the exit code each one gets.

/// Errors are sorted by who has to act: `Input` means the user must fix a file or an option (exit
/// code 2, nothing was run); `Failed` means a run started and broke (exit code 1);
/// `Interrupted` means a signal stopped a run that can be resumed (exit code 130, as for SIGINT).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Failed(_) => 1,
            Error::Interrupted(_) => 130,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error past the input checks (writing a run, starting a process) is a failure.
impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Failed(error.into())
    }
}
