//! Data: IDX files (MNIST, Fashion-MNIST, KMNIST, …), folders of PNG images, and the data
//! set on the GPU (u8, gathered into batches by a kernel).

pub mod gpu;
pub mod idx;
pub mod images;

use std::path::{Path, PathBuf};

/// Why a data file was refused: which file, and what was expected and found.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {detail}")]
pub struct DataError {
    pub file: String,
    pub detail: String,
}

impl DataError {
    pub fn new(file: &Path, detail: impl Into<String>) -> Self {
        DataError { file: file.display().to_string(), detail: detail.into() }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Images as u8 grey levels, row-major, one after another.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Option<Vec<u8>>,
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// Where it came from, for messages and checkpoints.
    pub source: String,
}

impl Dataset {
    pub fn dim(&self) -> usize {
        self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.dim()..(i + 1) * self.dim()]
    }

    /// The first `n` images (all when n ≥ count).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.count);
        self.images.truncate(n * self.dim());
        if let Some(l) = &mut self.labels {
            l.truncate(n);
        }
        self.count = n;
        self
    }
}

/// A training set and its held-out test set.
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))]).find(|p| p.is_file())
}

/// Loads a data set from a path: a folder of IDX files (MNIST naming, with `.` or `-`
/// before `idx`, gzip or raw) or a folder of PNG images (resized to `size`×`size`, 10 %
/// held out as the test set, chosen by `seed`).
pub fn load(path: &Path, size: usize, seed: u64) -> Result<Split> {
    if !path.is_dir() {
        return Err(DataError::new(path, "not a folder: expected one with IDX files (train-images-idx3-ubyte[.gz], …) or PNG images"));
    }
    let train_images = find(path, &["train-images.idx3-ubyte", "train-images-idx3-ubyte"]);
    if let Some(train_images) = train_images {
        let train_labels = find(path, &["train-labels.idx1-ubyte", "train-labels-idx1-ubyte"]);
        let test_images = find(path, &["t10k-images.idx3-ubyte", "t10k-images-idx3-ubyte"])
            .ok_or_else(|| DataError::new(path, "has train-images but no t10k-images (the test set)"))?;
        let test_labels = find(path, &["t10k-labels.idx1-ubyte", "t10k-labels-idx1-ubyte"]);
        let train = idx::load_images(&train_images, train_labels.as_deref())?;
        let test = idx::load_images(&test_images, test_labels.as_deref())?;
        if (train.height, train.width) != (test.height, test.width) {
            return Err(DataError::new(
                &test_images,
                format!("images are {}x{} but the training images are {}x{}", test.height, test.width, train.height, train.width),
            ));
        }
        return Ok(Split { train, test });
    }
    images::load_folder(path, size, seed)
}

/// The MNIST shipped with vaegan: `datasets/mnist` under the current directory, else
/// under the source tree the binary was built from.
pub fn default_mnist() -> PathBuf {
    let here = PathBuf::from("datasets/mnist");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}
