//! Reading operator-named text files (the config, the lots registry) with a size bound, so that a
//! path naming a device or a huge file is an error instead of unbounded memory.

use std::io::Read;
use std::path::Path;

/// Largest config or lots file read: far above any real one (a city's lots registry is a few
/// hundred KB).
pub const MAX_TEXT_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The file's text; an error if it is not UTF-8 or larger than `max_bytes`.
pub fn read_text(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(max_bytes + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            max_bytes / (1024 * 1024)
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_bound_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_text(&path, 4).unwrap(), "abcd");
        let e = read_text(&path, 3).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn an_endless_device_ends_at_the_bound() {
        let e = read_text(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
