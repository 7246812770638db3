//! The directory netlab creates and fills for `{root}` (http-static).

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Failure;

/// A directory for `{root}`: /tmp/netlab-check-PID-N/ with the served
/// files in `www/` (the `{root}`) and files that must never be served
/// next to it. Removed on drop.
pub struct WorkDir {
    base: PathBuf,
    root: PathBuf,
}

impl WorkDir {
    pub fn create(prepare: fn(&Path) -> io::Result<()>) -> Result<WorkDir, Failure> {
        use std::os::unix::fs::DirBuilderExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let base =
            std::env::temp_dir().join(format!("netlab-check-{}-{stamp}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&base)
            .map_err(|err| {
                Failure::new(format!("cannot create {}: {err}", base.display()), None)
            })?;
        let dir = WorkDir {
            root: base.join("www"),
            base,
        };
        std::fs::create_dir(&dir.root)
            .and_then(|()| prepare(&dir.root))
            .map_err(|err| {
                Failure::new(format!("cannot fill {}: {err}", dir.root.display()), None)
            })?;
        Ok(dir)
    }

    /// The directory the program serves (`{root}`).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
