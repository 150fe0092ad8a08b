//! Labels for image folders (`data::labels`): CelebA's attribute list and CSV files joined
//! to the images by name, kept with their images through the split, and every kind of bad
//! labels file refused with its line named.

use std::path::Path;

use vaegan::data::labels::{self, Attributes};
use vaegan::data::{Crop, ImageOptions, Labels, LoadOptions};

use crate::data::write;

/// A folder of `n` 4×4 grey PNGs, image i filled with the value 10·i (so a loaded image
/// says which file it was); `nested` puts the odd ones in a subfolder.
fn numbered_folder(dir: &Path, n: usize, nested: bool) -> Vec<String> {
    let mut names = vec![];
    for i in 0..n {
        let name = if nested && i % 2 == 1 { format!("sub/img_{i:02}.png") } else { format!("img_{i:02}.png") };
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        vaegan::pictures::write_png(&path, 4, 4, png::ColorType::Grayscale, &[10 * i as u8; 16]).unwrap();
        names.push(name);
    }
    names
}

fn load_with(dir: &Path, labels: Labels) -> Result<vaegan::data::Loaded, vaegan::data::DataError> {
    let cache = tempfile::tempdir().unwrap();
    let image = ImageOptions { height: 4, width: 4, channels: 1, crop: Crop::Centre };
    vaegan::data::load(dir, &LoadOptions { image, seed: 3, cache_dir: Some(cache.path().to_path_buf()), progress: &|_, _| {}, labels })
}

/// Image i's attributes in the tests' files: "Odd" when i is odd, "Big" when i ≥ 5,
/// "Third" when i is a multiple of 3.
fn expected(i: usize) -> [u8; 3] {
    [(i % 2 == 1) as u8, (i >= 5) as u8, i.is_multiple_of(3) as u8]
}

fn celeba_text(names: &[String]) -> String {
    let mut t = format!("{}\nOdd Big  Third \n", names.len());
    for (i, n) in names.iter().enumerate().rev() {
        let v: Vec<&str> = expected(i).iter().map(|&b| if b == 1 { " 1" } else { "-1" }).collect();
        t.push_str(&format!("{n}  {}\n", v.join(" ")));
    }
    t
}

/// Every loaded image of `set` (identified by its pixel value) carries its own file's row.
fn check_rows(set: &vaegan::data::Dataset) {
    let a = set.attributes.as_ref().expect("attributes loaded");
    assert_eq!(a.count(), set.count);
    for k in 0..set.count {
        let i = set.image(k)[0] as usize / 10;
        assert_eq!(a.row(k), expected(i), "image {k} (file {i})");
    }
}

/// CelebA's format, lines in any order, names relative to the folder (nested) or bare:
/// each image gets its own line's attributes, through the split and a truncation.
#[test]
fn celeba_attribute_lists_follow_their_images_through_the_split() {
    for nested in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let names = numbered_folder(dir.path(), 11, nested);
        // Nested: the file names the odd images by relative path; bare names also match.
        let listed: Vec<String> = names.iter().enumerate().map(|(i, n)| if i == 3 { n.rsplit('/').next().unwrap().to_string() } else { n.clone() }).collect();
        write(dir.path(), "list_attr_celeba.txt", celeba_text(&listed).as_bytes());
        let loaded = load_with(dir.path(), Labels::IfFound).unwrap();
        assert!(loaded.labels_warning.is_none());
        let split = loaded.split;
        assert_eq!((split.train.count, split.test.count), (10, 1));
        assert_eq!(split.train.attributes.as_ref().unwrap().names, ["Odd", "Big", "Third"]);
        check_rows(&split.train);
        check_rows(&split.test);
        check_rows(&split.train.clone().truncate(4));
        // The table the commands use is the file's, not classes.
        let table = split.train.attribute_table().unwrap();
        assert_eq!(table.find("Big"), Ok(1));
        assert!(table.find("Small").unwrap_err().contains("Odd, Big, Third"));
    }
}

/// The shapes set's factors.csv: text columns one-hot (sorted), numeric columns skipped,
/// 0/1 columns as one attribute; a value two columns share is qualified by its column.
#[test]
fn csv_labels_become_one_hot_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("shapes");
    vaegan::data::shapes::write(&set, 30, 8, 5).unwrap();
    let table = labels::read(&set.join("factors.csv")).unwrap();
    assert_eq!(table.skipped, ["x", "y", "size", "angle"]);
    for i in 0..30 {
        let f = vaegan::data::shapes::factors(5, i);
        let row = &table.values[i * table.names.len()..][..table.names.len()];
        let on: Vec<&str> = table.names.iter().zip(row).filter(|(_, &v)| v == 1).map(|(n, _)| n.as_str()).collect();
        let mut want =
            vec![vaegan::data::shapes::SHAPES[f.shape], vaegan::data::shapes::COLOURS[f.colour].0, vaegan::data::shapes::BACKGROUNDS[f.background].0];
        want.sort_by_key(|n| table.names.iter().position(|m| m == n).unwrap_or_else(|| panic!("{n} not among {:?}", table.names)));
        assert_eq!(on, want, "image {i}");
    }
    let loaded = load_with(&set, Labels::Required(None)).unwrap();
    let a = loaded.split.train.attributes.unwrap();
    assert_eq!(a.columns.iter().filter(|c| *c == "shape").count(), 3);

    // Shared values and 0/1 columns.
    let csv = "file,top,bottom,glasses\na.png,red,blue,1\nb.png,blue,green,0\n";
    let t = labels::parse_csv(Path::new("l.csv"), csv.as_bytes()).unwrap();
    assert_eq!(t.names, ["top=blue", "red", "bottom=blue", "green", "glasses"]);
    assert_eq!(t.values, [0, 1, 1, 0, 1, 1, 0, 0, 1, 0]);
    let a = Attributes { names: t.names.clone(), columns: t.columns.clone(), values: t.values.clone(), source: "l.csv".into() };
    assert_eq!((a.find("red"), a.find("top=red"), a.find("bottom=blue"), a.find("glasses")), (Ok(1), Ok(1), Ok(2), Ok(4)));
    assert!(a.find("blue").is_err(), "blue is ambiguous");
}

/// MNIST's classes as attributes "0" … "9".
#[test]
fn classes_become_one_hot_attributes() {
    let a = Attributes::one_hot(&[3, 0, 9], 10, "digits");
    assert_eq!(a.names.len(), 10);
    assert_eq!(a.row(0), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(a.has(2, 9) && !a.has(1, 9));
    assert_eq!(a.find("9"), Ok(9));
}

/// Each bad labels file is refused with the file, the line and what was expected.
#[test]
fn bad_labels_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let names = numbered_folder(dir.path(), 3, false);
    let good = celeba_text(&names);
    // (what, labels file name, contents, words the error must hold)
    let cases: Vec<(&str, &str, String, Vec<&str>)> = vec![
        (
            "a missing value",
            "attr.txt",
            good.replacen("img_01.png   1 -1 -1", "img_01.png   1 -1", 1),
            vec!["attr.txt: line 4", "2 values for img_01.png, expected 3"],
        ),
        (
            "an unknown value",
            "attr.txt",
            good.replacen("img_00.png  -1 -1  1", "img_00.png  -1 0  1", 1),
            vec!["line 5", "\"0\" of Big for img_00.png: expected 1 or -1"],
        ),
        ("a wrong count", "attr.txt", good.replacen("3\n", "4\n", 1), vec!["announces 4 images, but 3"]),
        // Found by the `labels_celeba` fuzz target: the count was an allocation before it was
        // checked (a capacity overflow, or gigabytes).
        ("an enormous count", "attr.txt", good.replacen("3\n", "33666666666666663\n", 1), vec!["announces 33666666666666663 images, but 3"]),
        ("no count", "attr.txt", good.replacen("3\n", "three\n", 1), vec!["line 1", "expected the number of images"]),
        ("a repeated attribute", "attr.txt", good.replacen("Big", "Odd", 1), vec!["line 2", "\"Odd\" is named twice"]),
        ("a repeated file", "attr.txt", good.replacen("img_00.png", "img_01.png", 1), vec!["line 5", "img_01.png is listed again (first on line 4)"]),
        ("a file missing from the folder", "attr.txt", good.replacen("img_00.png", "img_07.png", 1), vec!["no line for the image img_00.png"]),
        (
            "an image with two lines",
            "attr.txt",
            format!("4\nOdd Big Third\nimg_00.png 1 1 1\n{}", good.split_once("Third \n").unwrap().1),
            vec!["line 3", "img_00.png is listed again"],
        ),
        (
            "an extra line",
            "attr.txt",
            format!("4\nOdd Big Third\nghost.png 1 1 1\n{}", good.split_once("Third \n").unwrap().1),
            vec!["line 3", "ghost.png is not an image in", "missing from the folder"],
        ),
        ("no file column", "l.csv", "name,colour\nimg_00.png,red\n".into(), vec!["l.csv: line 1", "no `file` column", "name, colour"]),
        ("a short row", "l.csv", "file,colour,size\nimg_00.png,red,1\nimg_01.png,red\nimg_02.png,blue,2\n".into(), vec!["line 3", "2 fields, expected 3"]),
        ("an empty cell", "l.csv", "file,colour\nimg_00.png,red\nimg_01.png,\nimg_02.png,blue\n".into(), vec!["line 3", "column \"colour\" is empty"]),
        // Found by the `labels_csv` fuzz target: column a's shared value x is qualified as
        // "a=x", the name of a 0/1 column too.
        (
            "a qualified name taken",
            "l.csv",
            "file,a,b,a=x\nimg_00.png,x,x,1\nimg_01.png,y,z,0\nimg_02.png,x,z,1\n".into(),
            vec!["line 1", "the attribute \"a=x\" would name two labels (from column \"a\" and column \"a=x\")"],
        ),
        ("only numbers", "l.csv", "file,x\nimg_00.png,0.5\nimg_01.png,2\nimg_02.png,3\n".into(), vec!["no attribute columns", "(x)"]),
        (
            "an identifier column",
            "l.csv",
            (0..300).fold("file,id\n".to_string(), |s, i| s + &format!("f{i}.png,id{i}\n")),
            vec!["\"id\" has 300 distinct text values"],
        ),
        ("not text", "attr.txt", "\u{FF}\u{FE}".into(), vec!["expected CelebA's list_attr_celeba.txt format"]),
        ("nothing", "attr.txt", "".into(), vec!["empty labels file"]),
    ];
    for (what, name, text, words) in cases {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = if what == "not text" { vec![0xFF, 0xFE, 0x00] } else { text.into_bytes() };
        std::fs::write(&path, bytes).unwrap();
        let err = match load_with(dir.path(), Labels::Required(Some(path.clone()))) {
            Ok(_) => panic!("{what}: loaded"),
            Err(e) => e.to_string(),
        };
        for w in words {
            assert!(err.contains(w), "{what}: {err:?} lacks {w:?}");
        }
        assert!(err.contains(name), "{what}: {err} does not name the file");
        std::fs::remove_file(&path).unwrap();
    }
}

/// Which labels a load wants: a bad labels file found in the folder only warns when
/// labels are not required; a command that requires them gets an error when there are
/// none; an IDX set's labels are its own.
#[test]
fn labels_are_optional_unless_required() {
    let dir = tempfile::tempdir().unwrap();
    numbered_folder(dir.path(), 3, false);
    let none = load_with(dir.path(), Labels::IfFound).unwrap();
    assert!(none.split.train.attributes.is_none() && none.labels_warning.is_none());
    let err = load_with(dir.path(), Labels::Required(None)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no labels") && err.contains("list_attr_celeba.txt"), "{err}");
    write(dir.path(), "factors.csv", b"file,colour\nimg_00.png,red\nimg_01.png,blue\n");
    let warned = load_with(dir.path(), Labels::IfFound).unwrap();
    assert!(warned.split.train.attributes.is_none());
    let w = warned.labels_warning.unwrap();
    assert!(w.contains("factors.csv") && w.contains("no line for the image img_02.png") && w.contains("without labels"), "{w}");
    let err = load_with(dir.path(), Labels::Required(None)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no line for the image img_02.png"), "{err}");
    let err = load_with(&crate::data::shipped_mnist(), Labels::Required(Some(dir.path().join("factors.csv")))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("set of IDX files"), "{err}");
}

/// Attribute vectors are differences of mean codes, in f64, zero (and refused by name)
/// where one side has no images; they survive a save and load, and a damaged file is
/// refused with what was expected.
#[test]
fn attribute_vectors_are_differences_of_mean_codes() {
    use vaegan::model::AttributeVectors;
    // Four images, latent 2; attributes A (images 0, 1), B (all), C (image 3).
    let attrs = Attributes {
        names: vec!["A".into(), "B".into(), "C".into()],
        columns: vec!["A".into(), "B".into(), "C".into()],
        values: vec![1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1],
        source: "t".into(),
    };
    let mu = [1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 7.0, -2.0];
    let v = AttributeVectors::from_codes(&mu, 2, &attrs, 42).unwrap();
    assert_eq!(v.vector(0), [(1.0 + 3.0) / 2.0 - (-1.0 + 7.0) / 2.0, (2.0 + 4.0) / 2.0 - (0.5 - 2.0) / 2.0]);
    // Means in f64, then rounded once.
    assert_eq!(v.vector(2), [(7.0 - (1.0f64 + 3.0 - 1.0) / 3.0) as f32, (-2.0 - (2.0f64 + 4.0 + 0.5) / 3.0) as f32]);
    assert_eq!((v.with.clone(), v.without.clone()), (vec![2, 4, 1], vec![2, 0, 3]));
    assert_eq!(v.vector(1), [0.0, 0.0]);
    assert!(v.find("B").unwrap_err().contains("4 training images have it and 0 do not"));
    assert!(v.find("D").unwrap_err().contains("A, B, C"));
    let shift = v.shift(&[0], &[2], 0.5);
    assert_eq!(shift, [0.5 * (v.vector(0)[0] - v.vector(2)[0]), 0.5 * (v.vector(0)[1] - v.vector(2)[1])]);
    assert!(AttributeVectors::from_codes(&mu[..6], 2, &attrs, 0).is_err(), "codes for 3 of 4 images");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attributes.safetensors");
    v.save(&path).unwrap();
    assert_eq!(AttributeVectors::load(&path).unwrap(), v);
    let damaged = dir.path().join("damaged.safetensors");
    let bad_names = [("vectors", vec![3, 2], &v.vectors[..]), ("with", vec![2], &[2.0, 4.0][..]), ("without", vec![3], &[2.0, 0.0, 3.0][..])];
    vaegan::tensor_file::write(&damaged, vaegan::model::attributes::FORMAT, &[("step", "1".into()), ("names", "[\"A\",\"B\",\"C\"]".into())], &bad_names)
        .unwrap();
    let err = AttributeVectors::load(&damaged).unwrap_err();
    assert!(err.contains("damaged.safetensors") && err.contains("with [2]") && err.contains("expected [3, latent], [3], [3]"), "{err}");
    vaegan::tensor_file::write(&damaged, vaegan::model::attributes::FORMAT, &[("step", "1".into()), ("names", "A,B,C".into())], &bad_names).unwrap();
    assert!(AttributeVectors::load(&damaged).unwrap_err().contains("\"names\" is missing or not a JSON list"));
    vaegan::tensor_file::write(&damaged, "vaegan-prior-1", &[("step", "1".into())], &bad_names).unwrap();
    assert!(AttributeVectors::load(&damaged).unwrap_err().contains("not a vaegan attribute-vector file"));
}
