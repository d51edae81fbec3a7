//! The uniform parameter block of every WGSL kernel as a typed Rust struct, field for field the
//! `struct Params` of its shader (`shaders/*.wgsl`), passed to the GPU as bytes through
//! `bytemuck`. `core/tests/gpu.rs` checks each struct against its shader's layout with naga.

use bytemuck::{Pod, Zeroable};

use super::kernels::Kernel;

/// A kernel's parameter block.
pub trait KernelParams: Pod {
    /// The kernel it belongs to.
    const KERNEL: Kernel;
}

macro_rules! params {
    ($(#[$doc:meta])* $name:ident => $kernel:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        impl KernelParams for $name {
            const KERNEL: Kernel = Kernel::$kernel;
        }
    };
}

params!(
    /// `conv2d.wgsl`: a convolution (or a linear layer on `[B, C, 1, 1]`).
    Conv2dParams => Conv2d {
        /// Images.
        batch: u32,
        /// Input channels.
        in_channels: u32,
        /// Input height.
        height: u32,
        /// Input width.
        width: u32,
        /// Output channels.
        out_channels: u32,
        /// Kernel side.
        kernel: u32,
        /// Zero padding.
        pad: u32,
        /// Stride.
        stride: u32,
        /// Output height.
        out_height: u32,
        /// Output width.
        out_width: u32,
        /// 1: a ReLU after it.
        relu: u32,
        /// Workgroups along the output positions per row of the dispatch grid.
        n_groups_x: u32,
        /// 1: the input gradient of the convolution (the fields then describe the backward
        /// product: `in_*` the output gradient, `out_*` the input gradient).
        backward: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `pool2d.wgsl`: max or average pooling.
    Pool2dParams => Pool2d {
        /// Images x channels.
        planes: u32,
        /// Input height.
        height: u32,
        /// Input width.
        width: u32,
        /// Window side.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// 0: maximum, 1: mean.
        mode: u32,
        /// 1: Caffe's ceil mode (maximum only): windows clipped at the bottom and right edges.
        ceil: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `conv_transpose.wgsl`: a bias-free transposed convolution without padding.
    ConvTransposeParams => ConvTranspose {
        /// Images.
        batch: u32,
        /// Input channels.
        in_channels: u32,
        /// Input height.
        height: u32,
        /// Input width.
        width: u32,
        /// Output channels.
        out_channels: u32,
        /// Kernel side.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Output height, `(height - 1) · stride + kernel`.
        out_height: u32,
        /// Output width.
        out_width: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `crop.wgsl`: a spatial crop.
    CropParams => Crop {
        /// Images x channels.
        planes: u32,
        /// Input height.
        height: u32,
        /// Input width.
        width: u32,
        /// Output height.
        out_height: u32,
        /// Output width.
        out_width: u32,
        /// Rows and columns skipped at the top and left.
        offset: u32,
        /// 0: the crop; 1: its gradient (the small map put back in place, zeros around it).
        mode: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `scan_pair.wgsl`: a bidirectional scan pair, a range of steps.
    ScanPairParams => ScanPair {
        /// Images.
        batch: u32,
        /// Hidden size.
        hidden: u32,
        /// Map height.
        height: u32,
        /// Map width.
        width: u32,
        /// 0: horizontal, 1: vertical.
        axis: u32,
        /// 0: vanilla, 1: vanilla + LayerNorm, 2: GRU.
        cell: u32,
        /// Channels of the projection buffer.
        xi_channels: u32,
        /// Where direction 1's projection starts (0 when shared).
        dir_offset: u32,
        /// The first step this dispatch runs.
        first_step: u32,
        /// How many steps it runs.
        step_count: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `scan_step.wgsl`: one step of a vanilla pair (or of its gradient), every sequence of
    /// both directions.
    ScanStepParams => ScanStep {
        /// Images.
        batch: u32,
        /// Hidden size.
        hidden: u32,
        /// Map height.
        height: u32,
        /// Map width.
        width: u32,
        /// 0: horizontal, 1: vertical.
        axis: u32,
        /// Channels of the projection (forward) or of the merged output's gradient (backward).
        src_channels: u32,
        /// Where direction 1's channels start among them (0 when shared).
        src_offset: u32,
        /// The step this dispatch computes.
        step: u32,
        /// 1: the gradient.
        backward: u32,
        /// The merge's factor on the gradient, as f32 bits (backward only).
        scale_bits: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `pool2d_backward.wgsl`: the gradient of max pooling over non-overlapping windows.
    Pool2dBackwardParams => Pool2dBackward {
        /// Images x channels.
        planes: u32,
        /// The forward's input height.
        height: u32,
        /// The forward's input width.
        width: u32,
        /// Window side and stride.
        kernel: u32,
        /// 1: Caffe's ceil mode.
        ceil: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `upsample_backward.wgsl`: the gradient of bilinear upsampling's input.
    UpsampleBackwardParams => UpsampleBackward {
        /// Images x channels.
        planes: u32,
        /// The forward's input height.
        in_height: u32,
        /// The forward's input width.
        in_width: u32,
        /// The forward's output height.
        out_height: u32,
        /// The forward's output width.
        out_width: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `combine.wgsl`: a sum, mean or concatenation of two maps.
    CombineParams => Combine {
        /// Images.
        batch: u32,
        /// Channels of the first map.
        a_channels: u32,
        /// Channels of the second map.
        b_channels: u32,
        /// Positions per channel.
        plane: u32,
        /// 0: sum, 1: mean, 2: concatenation, 3: `a` where `b > 0`, 4: `b_channels` of `a`'s
        /// channels from `offset` on.
        mode: u32,
        /// Mode 4: the first channel taken.
        offset: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `affine.wgsl`: a per-channel affine map and a ReLU.
    AffineParams => Affine {
        /// Values.
        n: u32,
        /// Channels of the scale and shift.
        channels: u32,
        /// Values per channel run.
        plane: u32,
        /// 1: a ReLU after it; 2: the gradient of the map with its ReLU (`x` the output's
        /// gradient, `shift` the forward's output).
        relu: u32,
    }
);

params!(
    /// `upsample.wgsl`: bilinear upsampling, optionally plus a map.
    UpsampleParams => Upsample {
        /// Images x channels.
        planes: u32,
        /// Input height.
        in_height: u32,
        /// Input width.
        in_width: u32,
        /// Output height.
        out_height: u32,
        /// Output width.
        out_width: u32,
        /// 1: add the second buffer.
        add: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `global_pool.wgsl`: global max or average pooling.
    GlobalPoolParams => GlobalPool {
        /// Images x channels.
        planes: u32,
        /// Positions per plane.
        size: u32,
        /// 0: maximum, 1: mean.
        mode: u32,
        /// Workgroups per row of the dispatch grid.
        groups_x: u32,
    }
);

params!(
    /// `colour_map.wgsl`: values to RGBA through a colour map.
    ColourMapParams => ColourMap {
        /// Values.
        n: u32,
        /// 0: viridis, 1: grey, 2: diverging.
        map: u32,
        /// The value mapped to the low end.
        lo: f32,
        /// The value mapped to the high end.
        hi: f32,
    }
);

params!(
    /// `label_colour.wgsl`: argmax labels and their palette colours over a photo.
    LabelColourParams => LabelColour {
        /// Classes.
        classes: u32,
        /// Pixels.
        plane: u32,
        /// Offset of the image's scores.
        offset: u32,
        /// Opacity of the labels over the photo.
        opacity: f32,
    }
);

params!(
    /// `weight_grad.wgsl`: a weight gradient as a product with the input unfolded (mode 0), or a
    /// bias gradient (mode 1).
    WeightGradParams => WeightGrad {
        /// Images.
        batch: u32,
        /// Channels of the output gradient G (rows of the weight gradient).
        out_channels: u32,
        /// G's height.
        g_height: u32,
        /// G's width.
        g_width: u32,
        /// Channels of the source map.
        in_channels: u32,
        /// The source's height.
        src_height: u32,
        /// The source's width.
        src_width: u32,
        /// Kernel side.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Row offset of the source window (minus the padding, plus a scan's shift).
        off_y: i32,
        /// Column offset of the source window.
        off_x: i32,
        /// Where the result starts in the output buffer.
        out_offset: u32,
        /// 0: the weight gradient, 1: the bias gradient.
        mode: u32,
        /// Mode 0: the result's row stride in the output buffer (0: its own width, rows
        /// back to back; wider to fill a block of columns of a larger matrix).
        out_row: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `global_pool_backward.wgsl`: the gradient of global pooling's input.
    GlobalPoolBackwardParams => GlobalPoolBackward {
        /// Images x channels.
        planes: u32,
        /// Positions per plane.
        size: u32,
        /// 0: maximum, 1: mean.
        mode: u32,
        /// Padding to 16 bytes.
        _a: u32,
    }
);

params!(
    /// `softmax_xent.wgsl`: softmax cross-entropy per row of scores, with its gradient.
    SoftmaxXentParams => SoftmaxXent {
        /// Rows (images, or pixels of every image).
        rows: u32,
        /// Classes.
        classes: u32,
        /// Distance between a row's classes (1, or H·W).
        plane: u32,
        /// The gradient's factor (1 / rows counted).
        scale: f32,
        /// The label that counts for nothing (`u32::MAX`: none).
        ignore: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
        /// Padding to 16 bytes.
        _c: u32,
    }
);

params!(
    /// `optimizer.wgsl`: one RMSprop, SGD or Adam update of a weight buffer.
    OptimizerParams => Optimizer {
        /// Weights.
        n: u32,
        /// 0: RMSprop, 1: SGD with momentum, 2: Adam.
        mode: u32,
        /// Learning rate.
        lr: f32,
        /// RMSprop's α, SGD's momentum, Adam's β1.
        a: f32,
        /// Adam's β2.
        b: f32,
        /// ε.
        eps: f32,
        /// Adam's first bias correction `1 - β1^t`.
        c1: f32,
        /// Adam's second bias correction `1 - β2^t`.
        c2: f32,
    }
);

params!(
    /// `batch_norm.wgsl`: BatchNorm + ReLU in training mode and its gradient.
    BatchNormParams => BatchNorm {
        /// Images.
        batch: u32,
        /// Channels.
        channels: u32,
        /// Positions per channel and image.
        plane: u32,
        /// 0: statistics, 1: normalise, 2: the gains' and biases' gradients, 3: the input's.
        mode: u32,
        /// ε.
        eps: f32,
        /// Workgroups per row of the dispatch grid (modes 1 and 3).
        groups_x: u32,
        /// Padding to 16 bytes.
        _a: u32,
        /// Padding to 16 bytes.
        _b: u32,
    }
);

params!(
    /// `scan_pair_backward.wgsl`: the gradient of a vanilla + LayerNorm pair, per sequence.
    ScanPairBackwardParams => ScanPairBackward {
        /// Images.
        batch: u32,
        /// Hidden units per direction.
        hidden: u32,
        /// Map height.
        height: u32,
        /// Map width.
        width: u32,
        /// 0: horizontal, 1: vertical.
        axis: u32,
        /// Channels of the projection.
        xi_channels: u32,
        /// Where direction 1's projection starts (0: shared).
        dir_offset: u32,
        /// Channels of the merged output's gradient.
        g_channels: u32,
        /// Where direction 1's gradient starts among them.
        g_offset: u32,
        /// The merge's factor on the gradient.
        scale: f32,
        /// The first step of this dispatch, counted from the last.
        first_step: u32,
        /// Steps in this dispatch.
        step_count: u32,
    }
);

/// `gru_pair_backward.wgsl`: the gradient of a GRU pair, per sequence; the same block as
/// [`ScanPairBackwardParams`] (the two shaders' `Params` agree field for field), for the other
/// kernel.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct GruPairBackwardParams(pub ScanPairBackwardParams);

impl KernelParams for GruPairBackwardParams {
    const KERNEL: Kernel = Kernel::GruPairBackward;
}

impl From<ScanPairBackwardParams> for GruPairBackwardParams {
    fn from(p: ScanPairBackwardParams) -> Self {
        Self(p)
    }
}

/// Every parameter block with its shader's name and size in bytes (for the layout test).
pub const ALL: [(&str, usize); 21] = [
    ("conv2d", std::mem::size_of::<Conv2dParams>()),
    ("pool2d", std::mem::size_of::<Pool2dParams>()),
    ("scan_pair", std::mem::size_of::<ScanPairParams>()),
    ("combine", std::mem::size_of::<CombineParams>()),
    ("affine", std::mem::size_of::<AffineParams>()),
    ("upsample", std::mem::size_of::<UpsampleParams>()),
    ("global_pool", std::mem::size_of::<GlobalPoolParams>()),
    ("colour_map", std::mem::size_of::<ColourMapParams>()),
    ("label_colour", std::mem::size_of::<LabelColourParams>()),
    ("conv_transpose", std::mem::size_of::<ConvTransposeParams>()),
    ("crop", std::mem::size_of::<CropParams>()),
    ("scan_step", std::mem::size_of::<ScanStepParams>()),
    ("pool2d_backward", std::mem::size_of::<Pool2dBackwardParams>()),
    ("upsample_backward", std::mem::size_of::<UpsampleBackwardParams>()),
    ("weight_grad", std::mem::size_of::<WeightGradParams>()),
    ("global_pool_backward", std::mem::size_of::<GlobalPoolBackwardParams>()),
    ("softmax_xent", std::mem::size_of::<SoftmaxXentParams>()),
    ("optimizer", std::mem::size_of::<OptimizerParams>()),
    ("batch_norm", std::mem::size_of::<BatchNormParams>()),
    ("scan_pair_backward", std::mem::size_of::<ScanPairBackwardParams>()),
    ("gru_pair_backward", std::mem::size_of::<GruPairBackwardParams>()),
];
