//! Writes a state_dict as `torch.save` does (PyTorch ≥ 1.6), without PyTorch: a zip archive
//! `<stem>/data.pkl` (a protocol-2 pickle of an OrderedDict of `torch._utils._rebuild_tensor_v2`
//! calls whose storages are persistent ids) and one `<stem>/data/<key>` file per storage.

use std::io::Write;
use std::path::Path;

pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

pub fn save(path: &Path, tensors: &Tensors) {
    let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: String, bytes: &[u8]| {
        zip.start_file(name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    };
    put(format!("{stem}/data.pkl"), &pickle(tensors));
    put(format!("{stem}/byteorder"), b"little");
    for (key, (_, _, values)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        put(format!("{stem}/data/{key}"), &bytes);
    }
    put(format!("{stem}/version"), b"3\n");
    zip.finish().unwrap();
}

fn pickle(tensors: &Tensors) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.global("collections", "OrderedDict");
    p.0.extend(b")R");
    p.memo(0);
    p.0.push(b'(');
    for (key, (name, shape, values)) in tensors.iter().enumerate() {
        p.text(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.0.push(b'(');
        // The storage, as a persistent id: ('storage', type, key, location, size).
        p.0.push(b'(');
        p.text("storage");
        p.global("torch", "FloatStorage");
        p.text(&key.to_string());
        p.text("cpu");
        p.int(values.len());
        p.0.extend(b"tQ");
        p.int(0); // offset
        p.tuple(shape);
        let strides: Vec<usize> = (0..shape.len())
            .map(|d| shape[d + 1..].iter().product())
            .collect();
        p.tuple(&strides);
        p.0.push(0x89); // requires_grad = False
        p.global("collections", "OrderedDict"); // backward hooks
        p.0.extend(b")R");
        p.0.extend(b"tR");
        p.memo(key + 1);
    }
    p.0.push(b'u');
    // OrderedDict's state: the state_dict's `_metadata` attribute (empty here).
    p.0.push(b'}');
    p.text("_metadata");
    p.0.push(b'}');
    p.0.extend(b"s");
    p.0.extend(b"b.");
    p.0
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").bytes());
    }

    fn text(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.bytes());
    }

    fn int(&mut self, n: usize) {
        self.0.push(b'J');
        self.0.extend((n as i32).to_le_bytes());
    }

    fn tuple(&mut self, values: &[usize]) {
        self.0.push(b'(');
        for &v in values {
            self.int(v);
        }
        self.0.push(b't');
    }

    fn memo(&mut self, index: usize) {
        self.0.push(b'r');
        self.0.extend((index as u32).to_le_bytes());
    }
}
