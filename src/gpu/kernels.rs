//! Every WGSL kernel, named once: its source, entry point and binding layout. Pipelines and
//! bind-group layouts are built on first use and cached under the kernel's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use crate::error::Result;

/// Size of one `Step` uniform (shaders/common.wgsl) and the stride between steps in its buffer.
pub const STEP_UNIFORM_SIZE: u64 = 48;
pub const STEP_UNIFORM_STRIDE: u64 = 256;

/// Rows and columns of C per workgroup of shaders/matmul.wgsl, and its k step.
pub const MATMUL_TILE_ROWS: u32 = 128;
pub const MATMUL_TILE_COLS: u32 = 64;
const MATMUL_TILE_K: u32 = 16;
/// `Params::flags` bits of shaders/matmul.wgsl.
pub const MATMUL_ACCUMULATE: u32 = 1;
pub const MATMUL_BIAS_A: u32 = 2;
pub const MATMUL_BIAS_B: u32 = 4;

/// Hidden units (TU), k slices (KS) and batch rows (TB) of one workgroup of the tiled step
/// kernels (shaders/step_tiled.wgsl, shaders/hidden_backward.wgsl).
pub const STEP_TILE_UNITS: u32 = 32;
const STEP_TILE_SLICES: u32 = 8;
pub const STEP_TILE_ROWS: u32 = 4;

/// Invocations per workgroup of the persistent forward, and the largest H it takes (two rows
/// of H f32 in workgroup memory).
const PERSISTENT_WORKGROUP: u32 = 256;
pub const MAX_PERSISTENT_HIDDEN: u32 = 1024;

/// `Step::flags` bits (shaders/common.wgsl).
pub const STEP_RELU: u32 = 1;
pub const STEP_ADD_DIRECT: u32 = 2;
pub const STEP_REVERSE: u32 = 4;

/// Every constant the host and the kernels share, written once here and put in front of every
/// shader source as a WGSL `const`.
pub const SHADER_CONSTANTS: &[(&str, u32)] = &[
    ("TM", MATMUL_TILE_ROWS),
    ("TN", MATMUL_TILE_COLS),
    ("KT", MATMUL_TILE_K),
    ("MATMUL_ACCUMULATE", MATMUL_ACCUMULATE),
    ("MATMUL_BIAS_A", MATMUL_BIAS_A),
    ("MATMUL_BIAS_B", MATMUL_BIAS_B),
    ("TU", STEP_TILE_UNITS),
    ("KS", STEP_TILE_SLICES),
    ("TB", STEP_TILE_ROWS),
    ("PWG", PERSISTENT_WORKGROUP),
    ("MAX_PERSISTENT_H", MAX_PERSISTENT_HIDDEN),
    ("STEP_RELU", STEP_RELU),
    ("STEP_ADD_DIRECT", STEP_ADD_DIRECT),
    ("STEP_REVERSE", STEP_REVERSE),
];

/// How a kernel sees one binding.
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

/// A shader file: its source, the preludes it needs in front, and its bindings by WGSL name in
/// `@binding` order (the index is the position).
pub struct ShaderFile {
    pub name: &'static str,
    source: &'static str,
    preludes: &'static [&'static str],
    pub bindings: &'static [(&'static str, Binding)],
}

/// The kernels, as a typed key: one entry point of one shader file.
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
    /// One SGD-with-momentum step of one parameter tensor
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
const OPTIMIZER_TENSOR: &str = include_str!("../../shaders/optimizer_tensor.wgsl");
const CELL_PRELUDES: &[&str] = &[COMMON, CELL, PERSISTENT, STEP_TILED];

const MATMUL: ShaderFile = ShaderFile {
    name: "matmul.wgsl",
    source: include_str!("../../shaders/matmul.wgsl"),
    preludes: &[],
    bindings: &[
        ("p", Uniform),
        ("a", Read),
        ("b", Read),
        ("c", ReadWrite),
        ("bias_a", Read),
        ("bias_b", Read),
    ],
};
const COLUMN_SUM: ShaderFile = ShaderFile {
    name: "column_sum.wgsl",
    source: include_str!("../../shaders/column_sum.wgsl"),
    preludes: &[],
    bindings: &[("p", Uniform), ("a", Read), ("out", ReadWrite)],
};
const MASK: ShaderFile = ShaderFile {
    name: "mask.wgsl",
    source: include_str!("../../shaders/mask.wgsl"),
    preludes: &[],
    bindings: &[
        ("p", Uniform),
        ("a", Read),
        ("mask", Read),
        ("out", ReadWrite),
    ],
};
const ADAM: ShaderFile = ShaderFile {
    name: "adam.wgsl",
    source: include_str!("../../shaders/adam.wgsl"),
    preludes: &[OPTIMIZER_TENSOR],
    bindings: &[
        ("h", Uniform),
        ("t", Uniform),
        ("param", ReadWrite),
        ("grad", Read),
        ("m", ReadWrite),
        ("v", ReadWrite),
        ("param_t", ReadWrite),
    ],
};
const SGD: ShaderFile = ShaderFile {
    name: "sgd.wgsl",
    source: include_str!("../../shaders/sgd.wgsl"),
    preludes: &[OPTIMIZER_TENSOR],
    bindings: &[
        ("h", Uniform),
        ("t", Uniform),
        ("param", ReadWrite),
        ("grad", Read),
        ("m", ReadWrite),
        ("param_t", ReadWrite),
    ],
};
const SUM_SQUARES: ShaderFile = ShaderFile {
    name: "sum_squares.wgsl",
    source: include_str!("../../shaders/sum_squares.wgsl"),
    preludes: &[OPTIMIZER_TENSOR],
    bindings: &[("t", Uniform), ("grad", Read), ("sums", ReadWrite)],
};
const RNN: ShaderFile = ShaderFile {
    name: "rnn.wgsl",
    source: include_str!("../../shaders/rnn.wgsl"),
    preludes: CELL_PRELUDES,
    bindings: &[
        ("s", Step),
        ("w_hh_t", Read),
        ("gates", ReadWrite),
        ("states", ReadWrite),
        ("output", ReadWrite),
        ("grad_out", Read),
        ("dh_rec", Read),
        ("lengths", Read),
    ],
};
const LSTM: ShaderFile = ShaderFile {
    name: "lstm.wgsl",
    source: include_str!("../../shaders/lstm.wgsl"),
    preludes: CELL_PRELUDES,
    bindings: &[
        ("s", Step),
        ("w_hh_t", Read),
        ("gates", ReadWrite),
        ("states", ReadWrite),
        ("cells", ReadWrite),
        ("output", ReadWrite),
        ("grad_out", Read),
        ("dh_rec", Read),
        ("dc", ReadWrite),
        ("lengths", Read),
    ],
};
const GRU: ShaderFile = ShaderFile {
    name: "gru.wgsl",
    source: include_str!("../../shaders/gru.wgsl"),
    preludes: CELL_PRELUDES,
    bindings: &[
        ("s", Step),
        ("w_hh_t", Read),
        ("b_hh", Read),
        ("gates", ReadWrite),
        ("states", ReadWrite),
        ("hidden_n", ReadWrite),
        ("output", ReadWrite),
        ("grad_out", Read),
        ("dh_rec", Read),
        ("hgrads", ReadWrite),
        ("direct", ReadWrite),
        ("lengths", Read),
    ],
};
const HIDDEN_BACKWARD: ShaderFile = ShaderFile {
    name: "hidden_backward.wgsl",
    source: include_str!("../../shaders/hidden_backward.wgsl"),
    preludes: &[COMMON],
    bindings: &[
        ("s", Step),
        ("w_hh", Read),
        ("hg", Read),
        ("direct", Read),
        ("dh_rec", ReadWrite),
        ("lengths", Read),
    ],
};

/// Every shader file, for the tests that check them all.
#[cfg(test)]
const SHADER_FILES: &[&ShaderFile] = &[
    &MATMUL,
    &COLUMN_SUM,
    &MASK,
    &ADAM,
    &SGD,
    &SUM_SQUARES,
    &RNN,
    &LSTM,
    &GRU,
    &HIDDEN_BACKWARD,
];

// What the cell entry points use of their file's bindings (the naga test checks each list).
const CELL_FORWARD: &[&str] = &["s", "w_hh_t", "gates", "states", "output", "lengths"];
const CELL_BACKWARD: &[&str] = &["s", "gates", "grad_out", "dh_rec", "lengths"];
const LSTM_FORWARD: &[&str] = &[
    "s", "w_hh_t", "gates", "states", "cells", "output", "lengths",
];
const LSTM_BACKWARD: &[&str] = &["s", "gates", "cells", "grad_out", "dh_rec", "dc", "lengths"];
const GRU_FORWARD: &[&str] = &[
    "s", "w_hh_t", "b_hh", "gates", "states", "hidden_n", "output", "lengths",
];
const GRU_BACKWARD: &[&str] = &[
    "s", "gates", "states", "hidden_n", "grad_out", "dh_rec", "hgrads", "direct", "lengths",
];

impl Kernel {
    /// Every kernel, for the tests that check them all.
    pub const ALL: [Kernel; 20] = [
        Kernel::Matmul,
        Kernel::MatmulF16,
        Kernel::ColumnSum,
        Kernel::Mask,
        Kernel::Adam,
        Kernel::Sgd,
        Kernel::SumSquares,
        Kernel::RnnForward,
        Kernel::RnnForwardF16,
        Kernel::RnnForwardPersistent,
        Kernel::RnnBackwardGates,
        Kernel::LstmForward,
        Kernel::LstmForwardF16,
        Kernel::LstmForwardPersistent,
        Kernel::LstmBackwardGates,
        Kernel::GruForward,
        Kernel::GruForwardF16,
        Kernel::GruForwardPersistent,
        Kernel::GruBackwardGates,
        Kernel::HiddenBackward,
    ];

    pub fn file(self) -> &'static ShaderFile {
        match self {
            Kernel::Matmul | Kernel::MatmulF16 => &MATMUL,
            Kernel::ColumnSum => &COLUMN_SUM,
            Kernel::Mask => &MASK,
            Kernel::Adam => &ADAM,
            Kernel::Sgd => &SGD,
            Kernel::SumSquares => &SUM_SQUARES,
            Kernel::RnnForward
            | Kernel::RnnForwardF16
            | Kernel::RnnForwardPersistent
            | Kernel::RnnBackwardGates => &RNN,
            Kernel::LstmForward
            | Kernel::LstmForwardF16
            | Kernel::LstmForwardPersistent
            | Kernel::LstmBackwardGates => &LSTM,
            Kernel::GruForward
            | Kernel::GruForwardF16
            | Kernel::GruForwardPersistent
            | Kernel::GruBackwardGates => &GRU,
            Kernel::HiddenBackward => &HIDDEN_BACKWARD,
        }
    }

    /// The names of the bindings this entry point uses, which its layout holds (a file's other
    /// entry points may use others).
    pub fn uses(self) -> Vec<&'static str> {
        let subset: &[&str] = match self {
            Kernel::RnnForward | Kernel::RnnForwardF16 | Kernel::RnnForwardPersistent => {
                CELL_FORWARD
            }
            Kernel::RnnBackwardGates => CELL_BACKWARD,
            Kernel::LstmForward | Kernel::LstmForwardF16 | Kernel::LstmForwardPersistent => {
                LSTM_FORWARD
            }
            Kernel::LstmBackwardGates => LSTM_BACKWARD,
            Kernel::GruForward | Kernel::GruForwardF16 | Kernel::GruForwardPersistent => {
                GRU_FORWARD
            }
            Kernel::GruBackwardGates => GRU_BACKWARD,
            // Every other file has one entry point, which uses all its bindings.
            _ => return self.file().bindings.iter().map(|&(name, _)| name).collect(),
        };
        subset.to_vec()
    }

    /// (binding index, name, kind) of each binding this entry point uses.
    pub fn used_bindings(self) -> Vec<(u32, &'static str, Binding)> {
        let uses = self.uses();
        self.file()
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| uses.contains(name))
            .map(|(index, &(name, kind))| (index as u32, name, kind))
            .collect()
    }

    /// The WGSL source as compiled: storage-type aliases, the shared constants, the preludes,
    /// then the file.
    pub fn source(self) -> String {
        let mut source = String::from(if self.is_f16() {
            "enable f16;\nalias weight_t = f16;\nalias act_t = f16;\n"
        } else {
            "alias weight_t = f32;\nalias act_t = f32;\n"
        });
        for (name, value) in SHADER_CONSTANTS {
            source.push_str(&format!("const {name}: u32 = {value}u;\n"));
        }
        let file = self.file();
        source.push_str(&file.preludes.join("\n"));
        source.push('\n');
        source.push_str(file.source);
        source
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

    /// How many storage buffers this entry point binds.
    pub fn storage_buffers(self) -> usize {
        self.used_bindings()
            .iter()
            .filter(|(_, _, kind)| matches!(kind, Read | ReadWrite))
            .count()
    }
}

/// A compiled kernel: its pipeline and the layout its bind groups are made for.
pub struct CompiledKernel {
    pub kernel: Kernel,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipelines by kernel, built once per device.
#[derive(Default)]
pub struct KernelCache {
    compiled: Mutex<HashMap<Kernel, Arc<CompiledKernel>>>,
}

impl GpuContext {
    /// The kernel's pipeline, compiled on first use; a device with too few storage bindings per
    /// stage for it gets an error naming that limit.
    pub fn kernel(&self, kernel: Kernel) -> Result<Arc<CompiledKernel>> {
        let storage = kernel.storage_buffers() as u64;
        let allowed = self.limits.max_storage_buffers_per_shader_stage as u64;
        if storage > allowed {
            return Err(crate::error::RnnError::DeviceLimit {
                limit: "max_storage_buffers_per_shader_stage",
                what: format!("kernel {kernel:?} ({storage} bindings)"),
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
        let mut compiled = self
            .kernels
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(k) = compiled.get(&kernel) {
            return Ok(k.clone());
        }
        let what = format!(
            "compiling {} ({})",
            kernel.file().name,
            kernel.entry_point()
        );
        let new = Arc::new(self.checked(&what, || self.compile(kernel))?);
        compiled.insert(kernel, new.clone());
        Ok(new)
    }

    fn compile(&self, kernel: Kernel) -> CompiledKernel {
        let file = kernel.file().name;
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .used_bindings()
            .into_iter()
            .map(|(index, _, binding)| wgpu::BindGroupLayoutEntry {
                binding: index,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match binding {
                    Uniform | Step => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: binding == Step,
                        min_binding_size: None,
                    },
                    Read | ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: binding == Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry_point()),
                entries: &entries,
            });
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
        CompiledKernel {
            kernel,
            pipeline,
            layout,
        }
    }

    /// A bind group for `kernel` from buffers named as its WGSL bindings are: every binding
    /// the entry point uses must be given; others of its file may be (one list serves every
    /// entry point of a cell file). The step uniform is bound one `Step` wide so that a dynamic
    /// offset picks the step.
    pub fn bind_group(
        &self,
        compiled: &CompiledKernel,
        buffers: &[(&str, &wgpu::Buffer)],
    ) -> Result<wgpu::BindGroup> {
        let kernel = compiled.kernel;
        let file = kernel.file();
        if let Some((unknown, _)) = buffers
            .iter()
            .find(|(name, _)| !file.bindings.iter().any(|(known, _)| known == name))
        {
            panic!("{} has no binding named {unknown}", file.name);
        }
        let entries: Vec<wgpu::BindGroupEntry> = kernel
            .used_bindings()
            .into_iter()
            .map(|(index, name, binding)| {
                let buffer = buffers
                    .iter()
                    .find(|(given, _)| *given == name)
                    .map(|(_, buffer)| *buffer)
                    .unwrap_or_else(|| panic!("{kernel:?} needs its binding {name}"));
                wgpu::BindGroupEntry {
                    binding: index,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: (binding == Step)
                            .then(|| wgpu::BufferSize::new(STEP_UNIFORM_SIZE).expect("non-zero")),
                    }),
                }
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

#[cfg(test)]
mod tests {
    //! Every kernel's source checked with naga, the WGSL front end wgpu itself uses, with no GPU:
    //! the bindings declared here against the shader's, and each pipeline against the limits
    //! every WebGPU adapter has (`wgpu::Limits::default()`).

    use super::*;
    use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

    fn parse(kernel: Kernel) -> (naga::Module, ModuleInfo) {
        let source = kernel.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(&source)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{kernel:?}: {}", e.emit_to_string(&source)));
        (module, info)
    }

    fn entry_index(module: &naga::Module, kernel: Kernel) -> usize {
        module
            .entry_points
            .iter()
            .position(|e| e.name == kernel.entry_point())
            .unwrap_or_else(|| panic!("{kernel:?}: no entry point {}", kernel.entry_point()))
    }

    /// (index, name, kind) of every global binding the entry point uses, as naga sees them.
    fn bindings_in_shader(kernel: Kernel) -> Vec<(u32, String, Binding)> {
        let (module, info) = parse(kernel);
        let uses = info.get_entry_point(entry_index(&module, kernel));
        let mut found: Vec<(u32, String, Binding)> = module
            .global_variables
            .iter()
            .filter(|(handle, _)| !uses[*handle].is_empty())
            .filter_map(|(_, var)| {
                let binding = var.binding.as_ref()?;
                assert_eq!(
                    binding.group, 0,
                    "{kernel:?}: {:?} not in group 0",
                    var.name
                );
                let kind = match var.space {
                    naga::AddressSpace::Uniform => {
                        let ty = &module.types[var.ty];
                        if ty.name.as_deref() == Some("Step") {
                            Step
                        } else {
                            Uniform
                        }
                    }
                    naga::AddressSpace::Storage { access } => {
                        if access.contains(naga::StorageAccess::STORE) {
                            ReadWrite
                        } else {
                            Read
                        }
                    }
                    other => panic!("{kernel:?}: binding in {other:?}"),
                };
                Some((binding.binding, var.name.clone().unwrap_or_default(), kind))
            })
            .collect();
        found.sort_by_key(|(index, _, _)| *index);
        found
    }

    #[test]
    fn every_binding_declared_in_rust_is_the_shaders_by_index_name_and_access() {
        let mut wrong = Vec::new();
        for kernel in Kernel::ALL {
            let declared: Vec<(u32, String, Binding)> = kernel
                .used_bindings()
                .into_iter()
                .map(|(index, name, kind)| (index, name.to_string(), kind))
                .collect();
            let in_shader = bindings_in_shader(kernel);
            if declared != in_shader {
                wrong.push(format!(
                    "{kernel:?}:\n  declared  {declared:?}\n  in shader {in_shader:?}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_declared_binding_exists_in_its_file_at_its_index() {
        for file in SHADER_FILES {
            for (index, (name, _)) in file.bindings.iter().enumerate() {
                let declaration = format!("@binding({index}) var");
                let line = file
                    .source
                    .lines()
                    .find(|line| line.contains(&declaration))
                    .unwrap_or_else(|| panic!("{}: no {declaration}", file.name));
                assert!(
                    line.contains(&format!(" {name}: ")),
                    "{}: binding {index} is not {name}: {line}",
                    file.name
                );
            }
        }
    }

    /// Bytes of the workgroup memory the entry point uses.
    fn workgroup_bytes(module: &naga::Module, info: &ModuleInfo, entry: usize) -> u32 {
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let uses = info.get_entry_point(entry);
        module
            .global_variables
            .iter()
            .filter(|(handle, var)| {
                var.space == naga::AddressSpace::WorkGroup && !uses[*handle].is_empty()
            })
            .map(|(_, var)| layouter[var.ty].size)
            .sum()
    }

    #[test]
    fn every_pipeline_fits_the_limits_every_webgpu_adapter_has() {
        let limits = wgpu::Limits::default();
        for kernel in Kernel::ALL {
            let (module, info) = parse(kernel);
            let entry = entry_index(&module, kernel);
            let [x, y, z] = module.entry_points[entry].workgroup_size;
            let what = format!(
                "{kernel:?} ({} of {})",
                kernel.entry_point(),
                kernel.file().name
            );
            assert!(
                kernel.storage_buffers() as u32 <= limits.max_storage_buffers_per_shader_stage,
                "{what}: {} storage buffers",
                kernel.storage_buffers()
            );
            let uniforms = kernel.used_bindings().len() - kernel.storage_buffers();
            assert!(
                uniforms as u32 <= limits.max_uniform_buffers_per_shader_stage,
                "{what}"
            );
            assert!(
                x * y * z <= limits.max_compute_invocations_per_workgroup
                    && x <= limits.max_compute_workgroup_size_x
                    && y <= limits.max_compute_workgroup_size_y
                    && z <= limits.max_compute_workgroup_size_z,
                "{what}: workgroup ({x}, {y}, {z})"
            );
            let bytes = workgroup_bytes(&module, &info, entry);
            assert!(
                bytes <= limits.max_compute_workgroup_storage_size,
                "{what}: {bytes} bytes of workgroup memory"
            );
        }
    }

    #[test]
    fn the_step_uniform_is_the_size_the_host_binds() {
        let (module, _) = parse(Kernel::RnnForward);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some("Step"))
            .expect("a Step struct");
        assert_eq!(layouter[handle].size as u64, STEP_UNIFORM_SIZE);
        const { assert!(STEP_UNIFORM_SIZE <= STEP_UNIFORM_STRIDE) };
    }
}
