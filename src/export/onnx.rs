//! A `Net` as an ONNX model (opset 17, IR version 8): the messages of `onnx.proto` that an
//! inference model needs, declared for prost with their field numbers, and the one-to-one
//! mapping of our layers to ONNX operators. The batch dimension is symbolic ("batch").

use prost::Message;

use super::{Net, NetOp};
use crate::types::Act;

pub const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

// ---- onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto), the fields used ----

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// AttributeProto.AttributeType.
const FLOAT: i32 = 1;
const INT: i32 = 2;
const INTS: i32 = 7;

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// TensorProto.DataType.
pub const DT_FLOAT: i32 = 1;
pub const DT_INT64: i32 = 7;

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian values.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    #[prost(int64, tag = "1")]
    DimValue(i64),
    #[prost(string, tag = "2")]
    DimParam(String),
}

// ---- building ----

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.iter().map(|&x| x as i64).collect(), r#type: INTS, ..Default::default() }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: INT, ..Default::default() }
}
fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: FLOAT, ..Default::default() }
}

fn value_info(name: &str, dims: &[usize], doc: &str) -> ValueInfoProto {
    let mut dim = vec![Dimension { value: Some(DimensionValue::DimParam("batch".into())) }];
    dim.extend(dims.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d as i64)) }));
    let tensor_type = TypeProtoTensor { elem_type: DT_FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(tensor_type) }), doc_string: doc.into() }
}

/// What each input and output holds, for the model's documentation strings.
fn describe(name: &str, output_act: Act) -> String {
    let range = match output_act {
        Act::Tanh => "in [-1, 1]",
        Act::Sigmoid => "in [0, 1]",
        _ => "in the data's range",
    };
    match name {
        "z" => "latent codes, batch x latent (standard normal for samples)".into(),
        "labels" => "a conditioned model's labels, batch x labels, 1 where the image has the label, else 0 (the config's model.conditions names them)".into(),
        "images" => format!("images, batch x channels x height x width, {range}"),
        "mu" => "the posterior mean of z, batch x latent".into(),
        "logvar" => "the posterior log-variance of z, batch x latent".into(),
        "features" => "the learned similarity f (L_llike's layer): the last convolution before its batch norm, or the last hidden layer".into(),
        "logits" => "real-vs-generated logits, batch x 1 (sigmoid: the probability of real)".into(),
        _ => String::new(),
    }
}

/// The ONNX model's bytes. `metadata` goes into `metadata_props` (the run's config, step).
pub fn to_onnx(net: &Net, output_act: Act, metadata: &[(&str, String)]) -> Vec<u8> {
    let mut nodes = vec![];
    let mut initializer: Vec<TensorProto> = net
        .tensors
        .iter()
        .map(|t| TensorProto {
            dims: t.dims.iter().map(|&d| d as i64).collect(),
            data_type: DT_FLOAT,
            name: t.name.clone(),
            raw_data: bytemuck::cast_slice(&t.data).to_vec(),
        })
        .collect();
    for (i, n) in net.nodes.iter().enumerate() {
        let mut inputs = n.inputs.clone();
        let (op_type, attribute) = match &n.op {
            NetOp::Gemm => ("Gemm", vec![int("transB", 1)]),
            NetOp::Conv { kernel, stride, pad } => {
                ("Conv", vec![ints("kernel_shape", &[*kernel, *kernel]), ints("strides", &[*stride, *stride]), ints("pads", &[*pad; 4])])
            }
            NetOp::ConvTranspose { kernel, stride, pad, out_pad } => (
                "ConvTranspose",
                vec![
                    ints("kernel_shape", &[*kernel, *kernel]),
                    ints("strides", &[*stride, *stride]),
                    ints("pads", &[*pad; 4]),
                    ints("output_padding", &[*out_pad, *out_pad]),
                ],
            ),
            NetOp::BatchNorm { eps } => ("BatchNormalization", vec![float("epsilon", *eps)]),
            NetOp::Act(Act::Relu) => ("Relu", vec![]),
            NetOp::Act(Act::LeakyRelu(a)) => ("LeakyRelu", vec![float("alpha", *a)]),
            NetOp::Act(Act::Tanh) => ("Tanh", vec![]),
            NetOp::Act(Act::Sigmoid) => ("Sigmoid", vec![]),
            NetOp::Act(Act::None) => ("Identity", vec![]),
            NetOp::Add => ("Add", vec![]),
            NetOp::Flatten => ("Flatten", vec![int("axis", 1)]),
            NetOp::Unflatten { c, h, w } => {
                // Reshape's target shape is an input: −1 keeps the batch free.
                let shape = format!("{}.shape", n.output);
                let dims: Vec<i64> = vec![-1, *c as i64, *h as i64, *w as i64];
                initializer.push(TensorProto { dims: vec![4], data_type: DT_INT64, name: shape.clone(), raw_data: bytemuck::cast_slice(&dims).to_vec() });
                inputs.push(shape);
                ("Reshape", vec![])
            }
        };
        nodes.push(NodeProto { input: inputs, output: vec![n.output.clone()], name: format!("{op_type}_{i}"), op_type: op_type.into(), attribute });
    }
    let graph = GraphProto {
        node: nodes,
        name: format!("vaegan_{}", net.part),
        initializer,
        doc_string: format!("vaegan's {}, batch norm in evaluation mode", net.part),
        input: net.inputs.iter().map(|v| value_info(&v.name, &v.dims, &describe(&v.name, output_act))).collect(),
        output: net.outputs.iter().map(|v| value_info(&v.name, &v.dims, &describe(&v.name, output_act))).collect(),
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "vaegan".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("The {} of a VAE-GAN trained by vaegan", net.part),
        graph: Some(graph),
        metadata_props: metadata.iter().map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.clone() }).collect(),
    };
    model.encode_to_vec()
}
