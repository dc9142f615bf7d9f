//! Every WGSL kernel, named once: its source, entry point and binding layout. Pipelines and
//! bind-group layouts are built on first use and cached under the kernel's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use crate::error::Result;

/// Size of one `Step` uniform (shaders/common.wgsl) and the stride between steps in its buffer.
pub const STEP_UNIFORM_SIZE: u64 = 48;
pub const STEP_UNIFORM_STRIDE: u64 = 256;

/// How a kernel sees one binding; the binding number is the position in `Kernel::bindings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A plain uniform buffer.
    Uniform,
    /// The per-step `Step` uniform, picked with a dynamic offset.
    Step,
    Read,
    ReadWrite,
}

use Binding::{Read, ReadWrite, Step, Uniform};

/// The kernels, as a typed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    /// `Matmul` with A, B and C in f16 (f16 inference); biases and arithmetic stay f32.
    MatmulF16,
    ColumnSum,
    /// out = a * mask (dropout between layers, forward and backward)
    Mask,
    /// One Adam / AdamW step of one parameter tensor
    Adam,
    /// One SGD-with-momentum step of one parameter tensor (Adam's bindings)
    Sgd,
    /// Sum of squares of one gradient tensor
    SumSquares,
    RnnForward,
    /// The per-step forward with W_hh (transposed), gates and output in f16; likewise for LSTM
    /// and GRU.
    RnnForwardF16,
    RnnForwardPersistent,
    RnnBackwardGates,
    LstmForward,
    LstmForwardF16,
    LstmForwardPersistent,
    LstmBackwardGates,
    GruForward,
    GruForwardF16,
    GruForwardPersistent,
    GruBackwardGates,
    HiddenBackward,
}

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const PERSISTENT: &str = include_str!("../../shaders/persistent.wgsl");
const STEP_TILED: &str = include_str!("../../shaders/step_tiled.wgsl");
const CELL: &str = include_str!("../../shaders/cell.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const COLUMN_SUM: &str = include_str!("../../shaders/column_sum.wgsl");
const MASK: &str = include_str!("../../shaders/mask.wgsl");
const ADAM: &str = include_str!("../../shaders/adam.wgsl");
const SGD: &str = include_str!("../../shaders/sgd.wgsl");
const OPTIMIZER_TENSOR: &str = include_str!("../../shaders/optimizer_tensor.wgsl");
const SUM_SQUARES: &str = include_str!("../../shaders/sum_squares.wgsl");
const RNN: &str = include_str!("../../shaders/rnn.wgsl");
const LSTM: &str = include_str!("../../shaders/lstm.wgsl");
const GRU: &str = include_str!("../../shaders/gru.wgsl");
const HIDDEN_BACKWARD: &str = include_str!("../../shaders/hidden_backward.wgsl");

// Binding layouts, one per shader file (both entry points of a cell file share theirs).
const MATMUL_BINDINGS: &[Binding] = &[Uniform, Read, Read, ReadWrite, Read, Read];
const COLUMN_SUM_BINDINGS: &[Binding] = &[Uniform, Read, ReadWrite];
const MASK_BINDINGS: &[Binding] = &[Uniform, Read, Read, ReadWrite];
const ADAM_BINDINGS: &[Binding] = &[
    Uniform, Uniform, ReadWrite, Read, ReadWrite, ReadWrite, ReadWrite,
];
const SUM_SQUARES_BINDINGS: &[Binding] = &[Uniform, Read, ReadWrite];
const RNN_BINDINGS: &[Binding] = &[
    Step, Read, ReadWrite, ReadWrite, ReadWrite, Read, Read, Read,
];
const LSTM_BINDINGS: &[Binding] = &[
    Step, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Read, Read, ReadWrite, Read,
];
const GRU_BINDINGS: &[Binding] = &[
    Step, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Read, Read, ReadWrite, ReadWrite,
    Read,
];
const HIDDEN_BACKWARD_BINDINGS: &[Binding] = &[Step, Read, Read, Read, ReadWrite, Read];

impl Kernel {
    /// (file name, WGSL source without the common prelude)
    fn file(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Matmul | Kernel::MatmulF16 => ("matmul.wgsl", MATMUL),
            Kernel::ColumnSum => ("column_sum.wgsl", COLUMN_SUM),
            Kernel::Mask => ("mask.wgsl", MASK),
            Kernel::Adam => ("adam.wgsl", ADAM),
            Kernel::Sgd => ("sgd.wgsl", SGD),
            Kernel::SumSquares => ("sum_squares.wgsl", SUM_SQUARES),
            Kernel::RnnForward
            | Kernel::RnnForwardF16
            | Kernel::RnnForwardPersistent
            | Kernel::RnnBackwardGates => ("rnn.wgsl", RNN),
            Kernel::LstmForward
            | Kernel::LstmForwardF16
            | Kernel::LstmForwardPersistent
            | Kernel::LstmBackwardGates => ("lstm.wgsl", LSTM),
            Kernel::GruForward
            | Kernel::GruForwardF16
            | Kernel::GruForwardPersistent
            | Kernel::GruBackwardGates => ("gru.wgsl", GRU),
            Kernel::HiddenBackward => ("hidden_backward.wgsl", HIDDEN_BACKWARD),
        }
    }

    /// The preludes the source needs in front of it.
    fn preludes(self) -> &'static [&'static str] {
        match self {
            Kernel::Matmul | Kernel::MatmulF16 | Kernel::ColumnSum | Kernel::Mask => &[],
            Kernel::Adam | Kernel::Sgd | Kernel::SumSquares => &[OPTIMIZER_TENSOR],
            Kernel::HiddenBackward => &[COMMON],
            _ => &[COMMON, CELL, PERSISTENT, STEP_TILED],
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::RnnForward
            | Kernel::LstmForward
            | Kernel::GruForward
            | Kernel::RnnForwardF16
            | Kernel::LstmForwardF16
            | Kernel::GruForwardF16 => "forward",
            Kernel::RnnForwardPersistent
            | Kernel::LstmForwardPersistent
            | Kernel::GruForwardPersistent => "forward_persistent",
            Kernel::RnnBackwardGates | Kernel::LstmBackwardGates | Kernel::GruBackwardGates => {
                "backward_gates"
            }
            Kernel::Matmul
            | Kernel::MatmulF16
            | Kernel::ColumnSum
            | Kernel::Mask
            | Kernel::Adam
            | Kernel::Sgd
            | Kernel::SumSquares
            | Kernel::HiddenBackward => "main",
        }
    }

    /// Whether this variant stores weights (`weight_t` in the sources) and activations
    /// (`act_t`) in f16; the sources read them through `f32(...)` and write `act_t(...)`, so one
    /// source serves both precisions, and arithmetic stays f32.
    pub fn is_f16(self) -> bool {
        matches!(
            self,
            Kernel::MatmulF16
                | Kernel::RnnForwardF16
                | Kernel::LstmForwardF16
                | Kernel::GruForwardF16
        )
    }

    pub fn bindings(self) -> &'static [Binding] {
        match self {
            Kernel::Matmul | Kernel::MatmulF16 => MATMUL_BINDINGS,
            Kernel::ColumnSum => COLUMN_SUM_BINDINGS,
            Kernel::Mask => MASK_BINDINGS,
            Kernel::Adam | Kernel::Sgd => ADAM_BINDINGS,
            Kernel::SumSquares => SUM_SQUARES_BINDINGS,
            Kernel::RnnForward
            | Kernel::RnnForwardF16
            | Kernel::RnnForwardPersistent
            | Kernel::RnnBackwardGates => RNN_BINDINGS,
            Kernel::LstmForward
            | Kernel::LstmForwardF16
            | Kernel::LstmForwardPersistent
            | Kernel::LstmBackwardGates => LSTM_BINDINGS,
            Kernel::GruForward
            | Kernel::GruForwardF16
            | Kernel::GruForwardPersistent
            | Kernel::GruBackwardGates => GRU_BINDINGS,
            Kernel::HiddenBackward => HIDDEN_BACKWARD_BINDINGS,
        }
    }
}

/// A compiled kernel: its pipeline and the layout its bind groups are made for.
#[derive(Clone)]
pub struct CompiledKernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipelines by kernel, built once per device.
#[derive(Default)]
pub struct KernelCache {
    compiled: Mutex<HashMap<Kernel, Arc<CompiledKernel>>>,
    /// One layout per shader file, so both entry points of a cell file take the same bind group.
    layouts: Mutex<HashMap<&'static str, wgpu::BindGroupLayout>>,
}

impl GpuContext {
    /// The kernel's pipeline, compiled on first use; a device with too few storage bindings per
    /// stage for it gets an error naming that limit.
    pub fn kernel(&self, kernel: Kernel) -> Result<Arc<CompiledKernel>> {
        let storage = kernel
            .bindings()
            .iter()
            .filter(|b| matches!(b, Read | ReadWrite))
            .count() as u64;
        let allowed = self.limits.max_storage_buffers_per_shader_stage as u64;
        if storage > allowed {
            return Err(crate::error::RnnError::DeviceLimit {
                limit: "max_storage_buffers_per_shader_stage",
                what: format!("kernel {kernel:?} ({} bindings)", storage),
                needed: storage,
                allowed,
            });
        }
        if kernel.is_f16() && !self.has_f16() {
            return Err(crate::error::RnnError::Unsupported(format!(
                "kernel {kernel:?} on {} (the adapter has no SHADER_F16)",
                self.info.name
            )));
        }
        if let Some(k) = self
            .kernels
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kernel)
        {
            return Ok(k.clone());
        }
        let compiled = Arc::new(self.checked(&format!("compiling {}", kernel.file().0), || {
            self.compile(kernel)
        })?);
        self.kernels
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kernel, compiled.clone());
        Ok(compiled)
    }

    fn compile(&self, kernel: Kernel) -> CompiledKernel {
        let (file, body) = kernel.file();
        let storage_types = if kernel.is_f16() {
            "enable f16;\nalias weight_t = f16;\nalias act_t = f16;\n"
        } else {
            "alias weight_t = f32;\nalias act_t = f32;\n"
        };
        let mut source = String::from(storage_types);
        source.push_str(&kernel.preludes().join("\n"));
        source.push('\n');
        source.push_str(body);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .bindings()
            .iter()
            .enumerate()
            .map(|(i, binding)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match binding {
                    Uniform | Step => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: *binding == Step,
                        min_binding_size: None,
                    },
                    Read | ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *binding == Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = self
            .kernels
            .layouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(file)
            .or_insert_with(|| {
                self.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: Some(file),
                        entries: &entries,
                    })
            })
            .clone();
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(file),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry_point()),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kernel.entry_point()),
                compilation_options: Default::default(),
                cache: None,
            });
        CompiledKernel { pipeline, layout }
    }

    /// A bind group for `kernel` with `buffers` in binding order; the step uniform is bound one
    /// `Step` wide so that a dynamic offset picks the step.
    pub fn bind_group(&self, kernel: Kernel, buffers: &[&wgpu::Buffer]) -> Result<wgpu::BindGroup> {
        let bindings = kernel.bindings();
        assert_eq!(
            buffers.len(),
            bindings.len(),
            "{kernel:?} takes {} bindings",
            bindings.len()
        );
        let compiled = self.kernel(kernel)?;
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .zip(bindings)
            .enumerate()
            .map(|(i, (buffer, binding))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: (*binding == Step)
                        .then(|| wgpu::BufferSize::new(STEP_UNIFORM_SIZE).expect("non-zero")),
                }),
            })
            .collect();
        self.checked(&format!("binding {kernel:?}"), || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &compiled.layout,
                entries: &entries,
            })
        })
    }
}
