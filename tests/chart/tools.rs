//! Finds the command-line tools the packaging tests run.
//!
//! `hack/install-tools.sh` (run by `make test` and CI) builds helm and kubeconform into
//! `${XDG_CACHE_HOME:-$HOME/.cache}/caller-reputation-operator/tools/bin/`; that directory is
//! searched first, then `PATH`.

use std::path::{Path, PathBuf};

/// Directory into which `hack/install-tools.sh` links the tools it installs.
fn tools_bin() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(
        cache
            .join("caller-reputation-operator")
            .join("tools")
            .join("bin"),
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Returns the path of `name` in the tools directory or on `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools_bin()
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Returns the path of `name`.
///
/// # Panics
/// When the tool is neither in the tools directory nor on `PATH`.
pub fn require(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run hack/install-tools.sh (make test does), \
             which installs it into {}",
            tools_bin().map_or_else(
                || "the tools cache".to_string(),
                |dir| dir.display().to_string()
            )
        )
    })
}
