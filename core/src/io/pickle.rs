//! A pickle reader that never runs code: it decodes Python's pickle opcodes (protocols 0-5, the
//! ones PyTorch and Python 2 write) into a tree of [`Value`]s. A global (`torch._utils.
//! _rebuild_tensor_v2`) stays a name and a call stays a [`Value::Call`] of that name and its
//! arguments; what a call means is decided by the caller ([`super::pytorch`]), which knows the
//! handful of torch functions a weight file uses.
//!
//! Hostile files: every count and length is checked against the bytes left, values are shared
//! (`Rc`) so a memo read costs nothing, the nesting depth and the work of copy-on-write are
//! bounded, and an unknown opcode is an error naming it.

use std::rc::Rc;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `None`.
    #[default]
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits 64 bits (larger ones are [`Value::BigInt`]).
    Int(i64),
    /// An integer beyond 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string (Python 2 `str`, `bytes`).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Rc<Value>>),
    /// A list.
    List(Vec<Rc<Value>>),
    /// A dict, its items in insertion order.
    Dict(Vec<(Rc<Value>, Rc<Value>)>),
    /// A global by module and name (`GLOBAL`, `STACK_GLOBAL`), never resolved.
    Global(String, String),
    /// `callable(*args)` (`REDUCE`, `NEWOBJ`), with what was later set on the result: `BUILD`
    /// state and `SETITEM(S)` / `APPEND(S)` items.
    Call {
        /// What is called.
        callable: Rc<Value>,
        /// Its arguments (a tuple).
        args: Rc<Value>,
        /// State from `BUILD`.
        state: Option<Rc<Value>>,
        /// Items from `SETITEM(S)` (an `OrderedDict`'s entries).
        items: Vec<(Rc<Value>, Rc<Value>)>,
        /// Items from `APPEND(S)`.
        list: Vec<Rc<Value>>,
    },
    /// A persistent id (`BINPERSID`): how torch refers to a tensor's storage.
    Persistent(Rc<Value>),
}

impl Value {
    /// The text of a string (text or bytes).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Rc<Value>]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `(module, name)` of a global.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }
}

/// The deepest nesting a pickle may build (weight files nest a handful of levels).
pub const MAX_DEPTH: usize = 200;
/// The most memo entries and stack items.
const MAX_ITEMS: usize = 1 << 24;
/// The most values a copy-on-write may copy over one pickle, in total.
const MAX_COPIED: usize = 1 << 26;

/// A pickle decoder over a byte slice; [`Unpickler::load`] reads one pickle (up to `STOP`) and
/// leaves the slice after it, so consecutive pickles (torch's legacy format) read one by one.
pub struct Unpickler<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Item>,
    copied: usize,
}

type R<T> = std::result::Result<T, String>;

/// A stack or memo entry: a value and its nesting depth (kept beside it, so that depth is never
/// recomputed by walking a value that may share its parts many times over).
type Item = (Rc<Value>, usize);

fn max_depth<'v>(items: impl Iterator<Item = &'v Item>) -> usize {
    items.map(|i| i.1).max().unwrap_or(0)
}

fn values(items: Vec<Item>) -> Vec<Rc<Value>> {
    items.into_iter().map(|i| i.0).collect()
}

impl<'a> Unpickler<'a> {
    /// A decoder at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: Default::default(), copied: 0 }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!(
                "truncated: {n} bytes needed at offset {}, {} left",
                self.pos,
                self.bytes.len() - self.pos
            )
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> R<usize> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> R<usize> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> R<usize> {
        let b = self.take(8)?;
        let v = u64::from_le_bytes(b.try_into().map_err(|_| "truncated".to_string())?);
        usize::try_from(v).map_err(|_| format!("a length of {v} bytes"))
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.bytes[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("truncated: a line without its end")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "a line that is not UTF-8".to_string())?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) -> R<()> {
        self.push_nested(v, 0)
    }

    /// Pushes a value whose deepest part is `child` levels deep.
    fn push_nested(&mut self, v: Value, child: usize) -> R<()> {
        if self.stack.len() >= MAX_ITEMS {
            return Err("too many values on the stack".into());
        }
        let d = child + 1;
        if d > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        self.stack.push((Rc::new(v), d));
        Ok(())
    }

    fn pop(&mut self) -> R<Item> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("a value popped past the mark".into());
        }
        self.stack.pop().ok_or_else(|| "an opcode on an empty stack".to_string())
    }

    fn pop_mark(&mut self) -> R<Vec<Item>> {
        let m = self.marks.pop().ok_or("no mark on the stack")?;
        if m > self.stack.len() {
            return Err("the mark is past the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    /// The top value, to change it, its depth raised to hold a child `child` levels deep.
    fn top_mut(&mut self, child: usize) -> R<&mut Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("a value changed past the mark".into());
        }
        if child + 1 > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        let (top, d) = self.stack.last_mut().ok_or("an opcode on an empty stack")?;
        *d = (*d).max(child + 1);
        if Rc::strong_count(top) > 1 {
            // Copy on write; bounded in total so a file cannot make this quadratic.
            self.copied += match &**top {
                Value::List(v) | Value::Tuple(v) => v.len(),
                Value::Dict(v) => v.len(),
                Value::Call { items, list, .. } => items.len() + list.len(),
                _ => 1,
            };
            if self.copied > MAX_COPIED {
                return Err(
                    "too much copying: the file re-reads and changes shared values over and over".into()
                );
            }
        }
        Ok(Rc::make_mut(top))
    }

    fn add_items(&mut self, items: &[Item]) -> R<()> {
        if items.len() % 2 != 0 {
            return Err("SETITEMS with an odd number of values".into());
        }
        let d = max_depth(items.iter());
        let pairs: Vec<(Rc<Value>, Rc<Value>)> =
            items.chunks_exact(2).map(|p| (p[0].0.clone(), p[1].0.clone())).collect();
        match self.top_mut(d)? {
            Value::Dict(v) | Value::Call { items: v, .. } => v.extend(pairs),
            other => return Err(format!("SETITEM on a {}", kind(other))),
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Item>) -> R<()> {
        let d = max_depth(items.iter());
        match self.top_mut(d)? {
            Value::List(v) | Value::Call { list: v, .. } => v.extend(values(items)),
            other => return Err(format!("APPEND on a {}", kind(other))),
        }
        Ok(())
    }

    /// Pushes `make(values)` over items taken from the stack.
    fn push_of(&mut self, items: Vec<Item>, make: impl FnOnce(Vec<Rc<Value>>) -> Value) -> R<()> {
        let d = max_depth(items.iter());
        self.push_nested(make(values(items)), d)
    }

    fn memo_get(&mut self, key: u64) -> R<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo entry {key} read before it was written"))?;
        if self.stack.len() >= MAX_ITEMS {
            return Err("too many values on the stack".into());
        }
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> R<()> {
        let v = self.stack.last().cloned().ok_or("MEMOIZE on an empty stack")?;
        if self.memo.len() >= MAX_ITEMS && !self.memo.contains_key(&key) {
            return Err("too many memo entries".into());
        }
        self.memo.insert(key, v);
        Ok(())
    }

    /// Reads one pickle, up to and including its `STOP`, and returns its value.
    ///
    /// # Errors
    /// What is wrong and where (byte offset), in words.
    pub fn load(&mut self) -> R<Rc<Value>> {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        loop {
            let at = self.pos;
            let op = self.u8()?;
            self.step(op).map_err(|e| format!("{e} (opcode 0x{op:02x} at byte {at})"))?;
            if op == b'.' {
                let v = self.stack.pop().ok_or("STOP on an empty stack")?;
                if !self.stack.is_empty() || !self.marks.is_empty() {
                    return Err("values left on the stack at STOP".into());
                }
                return Ok(v.0);
            }
        }
    }

    fn step(&mut self, op: u8) -> R<()> {
        match op {
            0x80 => {
                let p = self.u8()?;
                if p > 5 {
                    return Err(format!("pickle protocol {p} (this reader knows 0-5)"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint
            }
            b'.' => {}
            b'(' => {
                if self.marks.len() >= MAX_DEPTH {
                    return Err("marks nested too deeply".into());
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.stack.last().cloned().ok_or("DUP on an empty stack")?;
                self.stack.push(v);
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let b = self.take(4)?;
                self.push(Value::Int(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))))?;
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(i64::from(v)))?;
            }
            b'M' => {
                let v = self.u16()?;
                self.push(Value::Int(v as i64))?;
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a { usize::from(self.u8()?) } else { self.u32()? };
                let b = self.take(n)?.to_vec();
                self.push(long_from_bytes(b))?;
            }
            b'I' => {
                let line = self.line()?;
                let v = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    s => Value::Int(s.parse().map_err(|_| format!("INT `{s}` is not an integer"))?),
                };
                self.push(v)?;
            }
            b'L' => {
                let line = self.line()?;
                let s = line.trim_end_matches('L');
                let v = s.parse().map_err(|_| format!("LONG `{s}` beyond 64 bits or not an integer"))?;
                self.push(Value::Int(v))?;
            }
            b'F' => {
                let line = self.line()?;
                self.push(Value::Float(line.parse().map_err(|_| format!("FLOAT `{line}`"))?))?;
            }
            b'G' => {
                let b = self.take(8)?;
                self.push(Value::Float(f64::from_be_bytes(b.try_into().map_err(|_| "truncated")?)))?;
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => self.u32()?,
                    0x8c => usize::from(self.u8()?),
                    _ => self.u64()?,
                };
                let b = self.take(n)?;
                let s = std::str::from_utf8(b).map_err(|_| "a text string that is not UTF-8".to_string())?;
                self.push(Value::Str(s.to_string()))?;
            }
            b'V' => {
                let s = self.line()?.to_string();
                self.push(Value::Str(s))?;
            }
            b'U' | b'T' | b'C' | b'B' | 0x8e => {
                let n = match op {
                    b'U' | b'C' => usize::from(self.u8()?),
                    b'T' | b'B' => self.u32()?,
                    _ => self.u64()?,
                };
                let b = self.take(n)?.to_vec();
                self.push(Value::Bytes(b))?;
            }
            b'S' => {
                let line = self.line()?;
                let s = line.trim_matches(|c| c == '\'' || c == '"').to_string();
                self.push(Value::Bytes(s.into_bytes()))?;
            }
            b')' => self.push(Value::Tuple(vec![]))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_of(items, Value::Tuple)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n || self.marks.last().is_some_and(|&m| m + n > self.stack.len()) {
                    return Err(format!("TUPLE{n} with fewer values on the stack"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push_of(items, Value::Tuple)?;
            }
            b']' => self.push(Value::List(vec![]))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.push_of(items, Value::List)?;
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            b'}' => self.push(Value::Dict(vec![]))?,
            b'd' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("DICT with an odd number of values".into());
                }
                self.push_of(items, |v| {
                    Value::Dict(v.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect())
                })?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.add_items(&[k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.add_items(&items)?;
            }
            0x8f => self.push(Value::List(vec![]))?, // EMPTY_SET, kept as a list
            0x90 => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push_of(items, Value::List)?;
            }
            b'c' => {
                let module = self.line()?.to_string();
                let name = self.line()?.to_string();
                self.push(Value::Global(module, name))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(m), Some(n)) = (module.0.as_str(), name.0.as_str()) else {
                    return Err("STACK_GLOBAL without two strings".into());
                };
                self.push(Value::Global(m.to_string(), n.to_string()))?;
            }
            b'R' | 0x81 | 0x92 => {
                if op == 0x92 {
                    self.pop()?; // NEWOBJ_EX's keyword arguments
                }
                let args = self.pop()?;
                let callable = self.pop()?;
                self.push_of(vec![callable, args], |mut v| {
                    let args = v.pop().unwrap_or_default();
                    let callable = v.pop().unwrap_or_default();
                    Value::Call { callable, args, state: None, items: vec![], list: vec![] }
                })?;
            }
            b'b' => {
                let (s, d) = self.pop()?;
                match self.top_mut(d)? {
                    Value::Call { state, .. } => *state = Some(s),
                    // BUILD on a plain value (a dict's __setstate__): kept as a call-less object.
                    other => {
                        let inner = Rc::new(std::mem::replace(other, Value::None));
                        *other = Value::Call {
                            callable: Rc::new(Value::Global("builtins".into(), "object".into())),
                            args: inner,
                            state: Some(s),
                            items: vec![],
                            list: vec![],
                        };
                    }
                }
            }
            b'Q' => {
                let (pid, d) = self.pop()?;
                self.push_nested(Value::Persistent(pid), d)?;
            }
            b'P' => {
                let s = self.line()?.to_string();
                self.push(Value::Persistent(Rc::new(Value::Str(s))))?;
            }
            b'h' => {
                let k = self.u8()?;
                self.memo_get(u64::from(k))?;
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k as u64)?;
            }
            b'g' => {
                let line = self.line()?;
                let k = line.parse().map_err(|_| format!("GET `{line}`"))?;
                self.memo_get(k)?;
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(u64::from(k))?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k as u64)?;
            }
            b'p' => {
                let line = self.line()?;
                let k = line.parse().map_err(|_| format!("PUT `{line}`"))?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            0x97 | 0x98 => {
                return Err("out-of-band buffers (protocol 5) are not part of a weight file".into());
            }
            b'i' | b'o' => {
                return Err("INST / OBJ (protocol 0 class instances) are not part of a weight file".into());
            }
            0x82..=0x84 => return Err("the extension registry is not part of a weight file".into()),
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(())
    }
}

fn long_from_bytes(b: Vec<u8>) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut buf = [if negative { 0xff } else { 0 }; 8];
        buf[..b.len()].copy_from_slice(&b);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(b)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(..) => "global",
        Value::Call { .. } => "object",
        Value::Persistent(_) => "persistent id",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_pickles_decode() {
        // pickle.dumps({'a': (1, -2, 3.5, 'x'), 'b': [None, True]}, protocol=2)
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x02tq\x03X\x01\x00\x00\x00bq\x04]q\x05(N\x88eu.";
        let v = Unpickler::new(p).load().unwrap();
        let Value::Dict(items) = &*v else { panic!("{v:?}") };
        assert_eq!(items[0].0.as_str(), Some("a"));
        let t = items[0].1.as_seq().unwrap();
        assert_eq!(t[0].as_int(), Some(1));
        assert_eq!(t[1].as_int(), Some(-2));
        assert_eq!(*t[2], Value::Float(3.5));
        assert_eq!(t[3].as_str(), Some("x"));
        assert_eq!(items[1].1.as_seq().unwrap().len(), 2);
    }

    #[test]
    fn torch_magic_number_is_a_long() {
        let p = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        let v = Unpickler::new(p).load().unwrap();
        assert_eq!(*v, Value::BigInt(vec![0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]));
    }

    #[test]
    fn hostile_pickles_are_errors() {
        for bad in [
            &b"\x80\x02"[..],                 // no STOP
            b"\x80\x02h\x05.",                // memo read before write
            b"\x80\x02X\xff\xff\xff\x7f.",    // length past the end
            b"\x80\x02s.",                    // SETITEM on an empty stack
            b"\x80\x02K\x01K\x02.",           // two values at STOP
            b"\x80\x09N.",                    // unknown protocol
            b"\x80\x02\xff.",                 // unknown opcode
            b"\x80\x02(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((.",
        ] {
            assert!(Unpickler::new(bad).load().is_err(), "{bad:?}");
        }
        // Deep nesting is refused, not a stack overflow.
        let mut deep = b"\x80\x02N".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 10_000));
        deep.push(b'.');
        assert!(Unpickler::new(&deep).load().unwrap_err().contains("nested"));
    }
}
