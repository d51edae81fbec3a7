//! The VGG-16 FCNs of SPEC §6: parameter counts, shapes and captured maps, bilinear upsampling
//! against PyTorch's values, exact insertion (the -LRNN variant with V = 0 gives the plain
//! network's scores bit for bit), and theoretical receptive fields of the heads.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{Device, Tensor, Var};
use lrnn_core::models::fcn::{bilinear_matrix, upsample_bilinear, FcnConfig, Variant};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::Forward;
use lrnn_core::probe::rf::receptive_field;

const VGG16_CONV_PARAMETERS: usize = 14_714_688;

fn expected(variant: Variant, n: usize, lrnn: bool) -> usize {
    let conv = |k: usize, cin: usize, cout: usize| k * k * cin * cout + cout;
    let pairs = |width: usize| if lrnn { 4 * width * width } else { 0 };
    let mut p = VGG16_CONV_PARAMETERS + conv(7, 512, n) + conv(1, n, n) + conv(1, n, 21) + pairs(n);
    if variant == Variant::Fcn8s {
        p += conv(1, 512, 1024) + conv(1, 1024, 1024) + conv(1, 1024, 21) + pairs(1024);
        p += conv(1, 256, 1024) + conv(1, 1024, 1024) + conv(1, 1024, 21) + pairs(1024);
    }
    p
}

#[test]
fn parameter_counts_follow_the_spec() {
    for (name, variant, lrnn) in [
        ("FCN-32s", Variant::Fcn32s, false),
        ("FCN-8s", Variant::Fcn8s, false),
        ("FCN-32s-LRNN", Variant::Fcn32s, true),
        ("FCN-8s-LRNN", Variant::Fcn8s, true),
    ] {
        let model = Model::new(ModelDesc::from_name_or_file(name).unwrap(), &Device::Cpu).unwrap();
        assert_eq!(model.parameter_count().unwrap(), expected(variant, 1024, lrnn), "{name}");
    }
    let desc = ModelDesc::Fcn(FcnConfig {
        variant: Variant::Fcn8s,
        heads: 512,
        lrnn: true,
        classes: 21,
        input_size: None,
        v_init: 0.0,
    });
    assert_eq!(
        Model::new(desc, &Device::Cpu).unwrap().parameter_count().unwrap(),
        expected(Variant::Fcn8s, 512, true)
    );
    // The trunk alone is VGG-16's 13 convolutions.
    let model = Model::new(ModelDesc::from_name_or_file("FCN-32s").unwrap(), &Device::Cpu).unwrap();
    let trunk: usize = model
        .weights()
        .unwrap()
        .iter()
        .filter(|(n, _)| n.starts_with("features."))
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(trunk, VGG16_CONV_PARAMETERS);
}

#[test]
fn bilinear_upsampling_matches_pytorch_and_has_a_gradient() {
    // torch.nn.functional.interpolate(x, size=4, mode="linear", align_corners=False) on [a, b]
    // gives [a, 0.75a + 0.25b, 0.25a + 0.75b, b].
    assert_eq!(bilinear_matrix(2, 4), [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
    // x2 from 3 samples: sources -0.25 (clamped), 0.25, 0.75, 1.25, 1.75, 2.25 (clamped to 2).
    let m = bilinear_matrix(3, 6);
    let rows: Vec<&[f32]> = m.chunks(3).collect();
    assert_eq!(rows[0], [1.0, 0.0, 0.0]);
    assert_eq!(rows[1], [0.75, 0.25, 0.0]);
    assert_eq!(rows[4], [0.0, 0.25, 0.75]);
    assert_eq!(rows[5], [0.0, 0.0, 1.0]);
    // 2-D: separable; each output is a convex combination, so a constant map stays constant.
    let x = Var::from_tensor(&Tensor::ones((1, 2, 3, 5), candle_core::DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let y = upsample_bilinear(x.as_tensor(), 12, 20).unwrap();
    assert_eq!(y.dims(), &[1, 2, 12, 20]);
    let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|&a| (a - 1.0).abs() < 1e-6));
    // The gradient of the sum: each input sample's total weight (columns of the matrices).
    let g = y.sum_all().unwrap().backward().unwrap();
    let gx = g.get(x.as_tensor()).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((gx - (2 * 12 * 20) as f32).abs() < 1e-3, "{gx}");
}

#[test]
fn fcn8s_lrnn_with_zero_recurrences_scores_exactly_as_fcn8s() {
    let dev = Device::Cpu;
    let plain = ModelDesc::Fcn(FcnConfig {
        variant: Variant::Fcn8s,
        heads: 32,
        lrnn: false,
        classes: 21,
        input_size: None,
        v_init: 0.0,
    });
    let lrnn = ModelDesc::Fcn(FcnConfig {
        variant: Variant::Fcn8s,
        heads: 32,
        lrnn: true,
        classes: 21,
        input_size: None,
        v_init: 0.0,
    });
    let a = Model::new_seeded(plain, &dev, 4).unwrap();
    let b = Model::new(lrnn, &dev).unwrap();
    // Copy every weight of the plain network; the recurrences stay at zero.
    let wa = a.weights().unwrap();
    for (name, var) in b.varmap().data().lock().unwrap().iter() {
        match wa.get(name) {
            Some(t) => var.set(t).unwrap(),
            None => assert!(name.contains(".v_"), "{name} is new but not a recurrence"),
        }
    }
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 96), &dev).unwrap();
    let mut fa = Forward::eval().capturing();
    let mut fb = Forward::eval().capturing();
    let ya = a.forward(&x, &mut fa).unwrap();
    let yb = b.forward(&x, &mut fb).unwrap();
    assert_eq!(ya.dims(), &[1, 21, 64, 96]);
    let d = (ya - yb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d, 0.0);
    let maps = fb.take_captured();
    for name in
        ["conv1_1", "pool3", "pool4", "pool5", "fc1", "fc1.lr", "fc2.bt", "fc5.tb", "fc8", "fc9", "score"]
    {
        assert!(maps.contains_key(name), "no captured map {name}");
    }
    assert_eq!(maps["score"].dims(), &[1, 21, 8, 12], "FCN-8s scores at 1/8");
    assert_eq!(maps["fc1.lr"].dims(), &[1, 32, 2, 3]);
    let err = a.forward(
        &Tensor::zeros((1, 3, 40, 64), candle_core::DType::F32, &dev).unwrap(),
        &mut Forward::eval(),
    );
    assert!(err.unwrap_err().to_string().contains("multiples of 32"));
}

#[test]
fn head_receptive_fields() {
    let plain = FcnConfig::named("FCN-32s").unwrap();
    let lrnn = FcnConfig::named("FCN-8s-LRNN").unwrap();
    let side = |c: &FcnConfig, m: &str| {
        let rf = receptive_field(&c.geometry(m).unwrap());
        (rf.height, rf.width)
    };
    // pool5 sees 212 px with a jump of 32; a 7x7 convolution adds 6 * 32.
    assert_eq!(side(&plain, "pool5"), (Some(212), Some(212)));
    assert_eq!(side(&plain, "fc1"), (Some(404), Some(404)));
    assert_eq!(side(&plain, "fc3"), (Some(404), Some(404)));
    assert_eq!(side(&lrnn, "fc1"), (Some(404), None), "a horizontal pair sees whole rows");
    // One direction alone: the rest of the row on its scanned side.
    let desc = ModelDesc::Fcn(lrnn.clone());
    let rf = receptive_field(&desc.geometry("fc1.lr").unwrap());
    assert_eq!((rf.height, rf.width, rf.open), (Some(404), Some(404), [true, false, false, false]));
    let rf = receptive_field(&desc.geometry("fc2.bt").unwrap());
    assert_eq!((rf.height, rf.width, rf.open), (Some(404), None, [true, true, false, true]));
    assert_eq!(desc.geometry("conv5_3.lr"), None, "no pair there");
    assert_eq!(side(&lrnn, "fc2"), (None, None));
    assert_eq!(side(&lrnn, "fc4"), (Some(100), None), "pool4 is 100 px");
    assert_eq!(side(&lrnn, "fc9"), (None, None));
    assert_eq!(plain.geometry("fc4"), None, "FCN-32s has no fc4");
}
