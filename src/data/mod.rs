//! Data: IDX files (MNIST, Fashion-MNIST, KMNIST, …), folders of PNG and JPEG images (grey
//! or RGB, decoded once into a cache), and the data set on the GPU (u8, gathered into
//! batches by a kernel).

pub mod cache;
pub mod gpu;
pub mod idx;
pub mod images;
pub mod labels;
pub mod shapes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::CacheStatus;
pub use images::{Crop, ImageOptions};
pub use labels::Attributes;

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

/// Images as u8 samples, row-major with channels interleaved (NHWC), one after another;
/// shared, so that a background feeder reads them without a copy.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Arc<Vec<u8>>,
    /// Class labels (IDX label files: MNIST's digits).
    pub labels: Option<Vec<u8>>,
    /// Binary attributes (a labels file beside a folder of images: `labels`).
    pub attributes: Option<Attributes>,
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Where it came from, for messages and checkpoints.
    pub source: String,
}

impl Dataset {
    pub fn dim(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// [height, width, channels].
    pub fn shape(&self) -> [usize; 3] {
        [self.height, self.width, self.channels]
    }

    /// The images with `channels` channels (grey copied to RGB, RGB to grey by luma).
    pub fn with_channels(self, channels: usize) -> Self {
        if channels == self.channels {
            return self;
        }
        let images: Vec<u8> = match (self.channels, channels) {
            (1, 3) => self.images.iter().flat_map(|&v| [v, v, v]).collect(),
            (3, 1) => self.images.chunks(3).map(|c| (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32).round() as u8).collect(),
            (a, b) => panic!("{a} → {b} channels"),
        };
        Dataset { images: images.into(), channels, ..self }
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.dim()..(i + 1) * self.dim()]
    }

    /// The images `ids`, in that order, with their labels and attributes.
    pub fn pick(&self, ids: &[usize]) -> Self {
        let images: Vec<u8> = ids.iter().flat_map(|&i| self.image(i).iter().copied()).collect();
        Dataset {
            images: images.into(),
            labels: self.labels.as_ref().map(|l| ids.iter().map(|&i| l[i]).collect()),
            attributes: self.attributes.as_ref().map(|a| a.pick(ids)),
            count: ids.len(),
            source: self.source.clone(),
            ..*self
        }
    }

    /// The first `n` images (all when n ≥ count).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.count);
        let keep = n * self.dim();
        Arc::make_mut(&mut self.images).truncate(keep);
        if let Some(l) = &mut self.labels {
            l.truncate(n);
        }
        if let Some(a) = &mut self.attributes {
            a.truncate(n);
        }
        self.count = n;
        self
    }

    /// The images' attributes: the labels file's, else the classes one-hot ("0" … "9" for
    /// MNIST), else None.
    pub fn attribute_table(&self) -> Option<Attributes> {
        if let Some(a) = &self.attributes {
            return Some(a.clone());
        }
        let labels = self.labels.as_ref()?;
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Some(Attributes::one_hot(labels, classes, &self.source))
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

/// How to load a data set: the images' target shape (folders are resampled to it; IDX sets
/// keep their own size but take its channels), the test split's seed, and where the
/// decoded-image cache lives.
pub struct LoadOptions<'a> {
    pub image: ImageOptions,
    pub seed: u64,
    /// None: `cache::default_dir`.
    pub cache_dir: Option<PathBuf>,
    /// Called with (decoded, total) while a cache is built.
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    pub labels: Labels,
}

/// Which labels a load wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Labels {
    /// Those of a labels file inside the folder (`labels::FILE_NAMES`), if it has one; one
    /// that does not fit the folder is reported (`Loaded::labels_warning`) and the set
    /// loads without attributes (training does not need them).
    #[default]
    IfFound,
    /// This labels file, or (None) the one inside the folder, or the IDX label files: a
    /// set without labels, or with labels that do not fit, is an error.
    Required(Option<PathBuf>),
}

/// A loaded data set, and what happened to its cache (folders only).
pub struct Loaded {
    pub split: Split,
    pub cache: Option<CacheStatus>,
    /// Why a labels file found in the folder was not used.
    pub labels_warning: Option<String>,
}

/// Loads a data set from a path: a folder of IDX files (MNIST naming, with `.` or `-`
/// before `idx`, gzip or raw) or a folder of PNG and JPEG images (see `images`).
pub fn load(path: &Path, o: &LoadOptions) -> Result<Loaded> {
    if !path.is_dir() {
        return Err(DataError::new(path, "not a folder: expected one with IDX files (train-images-idx3-ubyte[.gz], …) or PNG/JPEG images"));
    }
    let train_images = find(path, &["train-images.idx3-ubyte", "train-images-idx3-ubyte"]);
    if let Some(train_images) = train_images {
        if let Labels::Required(Some(l)) = &o.labels {
            return Err(DataError::new(l, format!("{} is a set of IDX files: its labels are its own train-labels and t10k-labels files", path.display())));
        }
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
        if o.labels != Labels::IfFound && (train.labels.is_none() || test.labels.is_none()) {
            return Err(DataError::new(path, "no train-labels and t10k-labels IDX files: this command needs labels"));
        }
        let c = o.image.channels;
        return Ok(Loaded { split: Split { train: train.with_channels(c), test: test.with_channels(c) }, cache: None, labels_warning: None });
    }
    let cache_dir = o.cache_dir.clone().unwrap_or_else(|| cache::default_dir(path));
    let (files, images, status) = cache::load(path, &o.image, &cache_dir, o.progress)?;
    // Labels before the split, joined by file name; the split keeps each image's row.
    let mut labels_warning = None;
    let given = match &o.labels {
        Labels::Required(Some(file)) => Some(file.clone()),
        _ => None,
    };
    let required = o.labels != Labels::IfFound;
    let attributes = match given.or_else(|| labels::find_in(path)) {
        Some(file) => match labels::read(&file).and_then(|t| t.for_images(path, &files)) {
            Ok(a) => Some(a),
            Err(e) if !required => {
                labels_warning = Some(format!("{e} (the images load without labels)"));
                None
            }
            Err(e) => return Err(e),
        },
        None if required => {
            return Err(DataError::new(
                path,
                format!(
                    "no labels: give a labels file (CelebA's list_attr_celeba.txt format or a CSV with a `file` column), or put one in the folder as {}",
                    labels::FILE_NAMES.join(", ")
                ),
            ))
        }
        None => None,
    };
    let split = images::split(&images, files.len(), attributes.as_ref(), &o.image, o.seed, &path.display().to_string());
    Ok(Loaded { split, cache: Some(status), labels_warning })
}

/// Whether `path` is a folder of IDX files (grey images with their own labels), not one of
/// PNG and JPEG images.
pub fn is_idx_folder(path: &Path) -> bool {
    path.is_dir() && find(path, &["train-images.idx3-ubyte", "train-images-idx3-ubyte"]).is_some()
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
