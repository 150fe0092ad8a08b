//! TensorBoard event files in a run folder: the losses at the read-back cadence, the
//! per-epoch metrics, the sample and reconstruction grids, and the run's config as text.
//!
//! The format is TensorFlow's: records framed as TFRecord (length, masked CRC-32C of the
//! length, the bytes, masked CRC-32C of the bytes) holding `Event` protos (the messages of
//! `tensorflow/core/util/event.proto` and `summary.proto` used here, declared for prost).
//! A thread encodes and writes them, so the step never waits on the disk. A resumed run
//! rewrites its file without the events past the checkpoint (a killed run logged steps it
//! will take again), then appends: no step is shown twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use prost::Message;

// ---- event.proto and summary.proto, the fields used ----

#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    #[prost(oneof = "ValueKind", tags = "2, 4, 8")]
    pub value: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueKind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
    #[prost(message, tag = "8")]
    Tensor(TfTensor),
}

#[derive(Clone, PartialEq, Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// PNG bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// tensorflow.TensorProto, for a string scalar (the text plugin's data).
#[derive(Clone, PartialEq, Message)]
pub struct TfTensor {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TfShape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TfShape {}

const DT_STRING: i32 = 7;

// ---- records ----

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The whole records of a file, in order; reading stops at the first cut or damaged one
/// (the tail a kill left).
pub fn read_records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = vec![];
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap());
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        // A length past the file's end (a cut record, or one near u64::MAX whose sum would
        // overflow) ends the reading, as a damaged one does.
        let room = (bytes.len() - at - 12) as u64;
        if len_crc != masked_crc(len_bytes) || len.checked_add(4).is_none_or(|n| n > room) {
            break;
        }
        let len = len as usize;
        let data = &bytes[at + 12..at + 12 + len];
        if u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap()) != masked_crc(data) {
            break;
        }
        out.push(data);
        at += 16 + len;
    }
    out
}

/// The records of an old events file that a run resumed at `keep` keeps: its summaries of
/// steps up to `keep`, whole and in order (a step that does not fit in 63 bits is not one).
/// Returns them as file bytes and their count. What the fuzz target calls.
pub fn kept_summaries(old: &[u8], keep: u64) -> (Vec<u8>, usize) {
    let (mut bytes, mut kept) = (vec![], 0);
    for data in read_records(old) {
        match Event::decode(data) {
            Ok(e) if matches!(e.what, Some(What::Summary(_))) && u64::try_from(e.step).is_ok_and(|s| s <= keep) => {
                bytes.extend(record(data));
                kept += 1;
            }
            _ => {}
        }
    }
    (bytes, kept)
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn summary(step: u64, value: Vec<SummaryValue>) -> Event {
    Event { wall_time: now(), step: step as i64, what: Some(What::Summary(Summary { value })) }
}

/// The events of scalars at `step`.
pub fn scalars(step: u64, values: &[(String, f32)]) -> Event {
    summary(step, values.iter().map(|(tag, v)| SummaryValue { tag: tag.clone(), metadata: None, value: Some(ValueKind::SimpleValue(*v)) }).collect())
}

/// A PNG image at `step`.
pub fn image(step: u64, tag: &str, png: Vec<u8>, (width, height, colorspace): (u32, u32, u32)) -> Event {
    let image = Image { height: height as i32, width: width as i32, colorspace: colorspace as i32, encoded_image_string: png };
    summary(step, vec![SummaryValue { tag: tag.into(), metadata: None, value: Some(ValueKind::Image(image)) }])
}

/// Markdown text at `step` (the text plugin).
pub fn text(step: u64, tag: &str, markdown: &str) -> Event {
    let metadata = SummaryMetadata { plugin_data: Some(PluginData { plugin_name: "text".into(), content: vec![] }) };
    let tensor = TfTensor { dtype: DT_STRING, tensor_shape: Some(TfShape {}), string_val: vec![markdown.as_bytes().to_vec()] };
    summary(step, vec![SummaryValue { tag: tag.into(), metadata: Some(metadata), value: Some(ValueKind::Tensor(tensor)) }])
}

// ---- the writer ----

/// The file vaegan writes in a run folder (TensorBoard reads any `*tfevents*` file).
pub const FILE_NAME: &str = "events.out.tfevents.vaegan";

/// Writes events from a background thread.
pub struct EventWriter {
    pub path: PathBuf,
    /// Summaries kept from the file of a resumed run.
    pub kept: usize,
    tx: Option<mpsc::Sender<Event>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl EventWriter {
    /// A new run's file (any old one is replaced), or a resumed run's: its events up to
    /// `keep_through` are kept, the rest dropped. The file is rewritten atomically.
    pub fn open(dir: &Path, keep_through: Option<u64>) -> std::io::Result<EventWriter> {
        let path = dir.join(FILE_NAME);
        let mut bytes = record(&Event { wall_time: now(), step: 0, what: Some(What::FileVersion("brain.Event:2".into())) }.encode_to_vec());
        let mut kept = 0;
        if let (Some(keep), Ok(old)) = (keep_through, std::fs::read(&path)) {
            let (records, n) = kept_summaries(&old, keep);
            bytes.extend(records);
            kept = n;
        }
        super::logs::write_atomically(&path, &bytes)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        let (tx, rx) = mpsc::channel::<Event>();
        let thread = std::thread::Builder::new().name("tensorboard".into()).spawn(move || -> std::io::Result<()> {
            let mut file = file;
            for event in rx {
                // One write per record: a kill cuts at most the last, which `open` drops.
                file.write_all(&record(&event.encode_to_vec()))?;
            }
            file.sync_all()
        })?;
        Ok(EventWriter { path, kept, tx: Some(tx), thread: Some(thread) })
    }

    /// Queues an event; never blocks.
    pub fn send(&self, event: Event) {
        if let Some(tx) = &self.tx {
            // A writer thread that stopped on an I/O error reports it at `close`.
            let _ = tx.send(event);
        }
    }

    /// Writes what is queued and reports the thread's I/O error, if any.
    pub fn close(&mut self) -> std::io::Result<()> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the TensorBoard writer thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
