//! A small pickle virtual machine that builds plain values and never executes code.
//!
//! It understands the opcodes of pickle protocols 0-5 that `torch.save` and ordinary
//! Python containers produce. Calls (`REDUCE`, `NEWOBJ`, `BUILD`) and persistent ids
//! are handed to a [`Resolver`], which decides what they mean (for torch: tensors and
//! storages); nothing named in the pickle is ever imported or run.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use super::torch_refs::{StorageRef, TensorRef};

/// Containers nested deeper than this are rejected: dropping a very deep chain of
/// `Rc` values recurses and could overflow the stack on a corrupt file.
const MAX_NESTING: usize = 1000;

/// A `module.name` reference found in a `GLOBAL`/`STACK_GLOBAL` opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRef {
    /// The module, e.g. `collections`.
    pub module: String,
    /// The attribute, e.g. `OrderedDict`.
    pub name: String,
}

impl fmt::Display for GlobalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// A Python dict (or OrderedDict) in insertion order, with last-write-wins keys.
#[derive(Debug, Default)]
pub struct Dict {
    /// Entries in insertion order.
    pub entries: Vec<(Value, Value)>,
    /// Position of each string key in `entries`, so that large dicts stay linear.
    string_keys: HashMap<Rc<str>, usize>,
    /// Deepest nesting of any value inside this dict.
    depth: usize,
}

impl Dict {
    /// Sets `key` to `value` (replacing an equal string key, as Python does).
    pub(crate) fn insert(&mut self, key: Value, value: Value) -> Result<(), String> {
        self.depth = self.depth.max(key.depth()).max(value.depth());
        if self.depth + 1 > MAX_NESTING {
            return Err(format!(
                "containers nested deeper than {MAX_NESTING} levels"
            ));
        }
        if let Value::Str(text) = &key {
            if let Some(&index) = self.string_keys.get(text) {
                self.entries[index].1 = value;
                return Ok(());
            }
            self.string_keys.insert(text.clone(), self.entries.len());
        }
        self.entries.push((key, value));
        Ok(())
    }

    /// The value stored under a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.string_keys
            .get(key)
            .map(|&index| &self.entries[index].1)
    }
}

/// A mutable Python list.
#[derive(Debug, Default)]
pub struct List {
    /// The items.
    pub items: Vec<Value>,
    depth: usize,
}

impl Drop for List {
    fn drop(&mut self) {
        drop_iteratively(std::mem::take(&mut self.items));
    }
}

impl Drop for Dict {
    fn drop(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        drop_iteratively(entries.into_iter().flat_map(|(key, value)| [key, value]));
    }
}

/// Drops values with an explicit work list instead of recursion: a pickle can nest
/// containers (filled through the memo after they were nested) far deeper than the
/// stack allows a recursive drop to go.
fn drop_iteratively(values: impl IntoIterator<Item = Value>) {
    let mut pending: Vec<Value> = values.into_iter().collect();
    while let Some(value) = pending.pop() {
        match value {
            // Only the last owner empties a container; its own drop then has nothing
            // left to recurse into.
            Value::List(list) if Rc::strong_count(&list) == 1 => {
                if let Ok(mut list) = list.try_borrow_mut() {
                    pending.append(&mut list.items);
                }
            }
            Value::Dict(dict) if Rc::strong_count(&dict) == 1 => {
                if let Ok(mut dict) = dict.try_borrow_mut() {
                    for (key, value) in std::mem::take(&mut dict.entries) {
                        pending.push(key);
                        pending.push(value);
                    }
                }
            }
            Value::Tuple(mut items, _) => {
                if let Some(items) = Rc::get_mut(&mut items) {
                    pending.extend(
                        items
                            .iter_mut()
                            .map(|item| std::mem::replace(item, Value::None)),
                    );
                }
            }
            _ => {}
        }
    }
}

impl List {
    fn push(&mut self, value: Value) -> Result<(), String> {
        self.depth = self.depth.max(value.depth());
        if self.depth + 1 > MAX_NESTING {
            return Err(format!(
                "containers nested deeper than {MAX_NESTING} levels"
            ));
        }
        self.items.push(value);
        Ok(())
    }
}

/// A value built by the pickle machine.
#[derive(Debug, Clone)]
pub enum Value {
    /// Python `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float (its value never matters for weights).
    Float,
    /// A text string.
    Str(Rc<str>),
    /// A byte string (its content never matters for weights).
    Bytes,
    /// An immutable tuple, with the deepest nesting of its items.
    Tuple(Rc<[Value]>, usize),
    /// A list (shared: the memo may hold it while it is still being filled).
    List(Rc<RefCell<List>>),
    /// A dict or OrderedDict.
    Dict(Rc<RefCell<Dict>>),
    /// A reference to a Python global (class or function) that was not called.
    Global(Rc<GlobalRef>),
    /// An object the resolver does not model, remembered only by its class.
    Opaque(Rc<GlobalRef>),
    /// A torch storage named by a persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor description (storage, offset, sizes, strides).
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// A short name of the value's type for error messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes => "bytes".into(),
            Value::Tuple(..) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(global) => format!("global {global}"),
            Value::Opaque(class) => format!("{class} object"),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
        }
    }

    fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, depth) => *depth,
            // A container being filled may be borrowed by an enclosing opcode; its
            // depth is then checked when that opcode finishes.
            Value::List(list) => list.try_borrow().map(|l| l.depth + 1).unwrap_or(1),
            Value::Dict(dict) => dict.try_borrow().map(|d| d.depth + 1).unwrap_or(1),
            _ => 0,
        }
    }

    fn tuple(items: Vec<Value>) -> Result<Value, String> {
        let depth = items.iter().map(Value::depth).max().unwrap_or(0) + 1;
        if depth > MAX_NESTING {
            return Err(format!(
                "containers nested deeper than {MAX_NESTING} levels"
            ));
        }
        Ok(Value::Tuple(items.into(), depth))
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            Value::Bool(value) => Some(*value as i64),
            _ => None,
        }
    }

    /// The items, if this is a tuple or a list.
    pub fn as_sequence(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(items, _) => Some(items.to_vec()),
            Value::List(list) => Some(list.borrow().items.clone()),
            _ => None,
        }
    }
}

/// Gives meaning to calls and persistent ids. Implementations build values from
/// plain data only; they must never run anything named in the pickle.
pub trait Resolver {
    /// `BINPERSID`: the value that a persistent id (usually a tuple) stands for.
    fn persistent_load(&mut self, pid: Value) -> Result<Value, String>;
    /// `REDUCE`: the result of calling `callable(*args)`.
    fn call(&mut self, callable: &GlobalRef, args: &[Value]) -> Result<Value, String>;
}

/// Runs a pickle program and returns the object it leaves on the stack.
///
/// Every error names the byte position and what was wrong there.
pub fn unpickle(data: &[u8], resolver: &mut dyn Resolver) -> Result<Value, String> {
    let mut machine = Machine {
        data,
        position: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let outcome = machine
        .run(resolver)
        .and_then(|value| check_nesting(&value).map(|()| value));
    if outcome.is_err() {
        machine.empty_containers();
    }
    outcome
}

/// The containers directly inside `value` with an identity (its allocation), or None
/// for a value that holds no other values.
fn container(value: &Value) -> Result<Option<(usize, Vec<Value>)>, String> {
    let busy = || "a container is still being filled when the pickle stops".to_string();
    Ok(match value {
        Value::Tuple(items, _) => Some((items.as_ptr() as usize, items.to_vec())),
        Value::List(list) => Some((
            Rc::as_ptr(list) as usize,
            list.try_borrow().map_err(|_| busy())?.items.clone(),
        )),
        Value::Dict(dict) => Some((
            Rc::as_ptr(dict) as usize,
            dict.try_borrow()
                .map_err(|_| busy())?
                .entries
                .iter()
                .flat_map(|(key, value)| [key.clone(), value.clone()])
                .collect(),
        )),
        _ => None,
    })
}

/// Checks the value the pickle built, as built: containers filled through the memo
/// after they were nested escape the checks made while building, so the real nesting
/// depth is measured here (without recursion), and reference cycles are refused.
fn check_nesting(root: &Value) -> Result<(), String> {
    struct Frame {
        id: usize,
        children: Vec<Value>,
        next: usize,
        /// Height of the tallest child finished so far.
        height: usize,
    }
    let too_deep =
        || format!("the pickle builds containers nested deeper than {MAX_NESTING} levels");
    let Some((id, children)) = container(root)? else {
        return Ok(());
    };
    // Height (levels of containers, itself included) of every container measured.
    let mut heights: HashMap<usize, usize> = HashMap::new();
    let mut on_path: HashSet<usize> = HashSet::from([id]);
    let mut stack = vec![Frame {
        id,
        children,
        next: 0,
        height: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        if frame.next == frame.children.len() {
            let (id, height) = (frame.id, frame.height + 1);
            stack.pop();
            on_path.remove(&id);
            heights.insert(id, height);
            if let Some(parent) = stack.last_mut() {
                parent.height = parent.height.max(height);
            }
            continue;
        }
        let child = frame.children[frame.next].clone();
        frame.next += 1;
        let Some((id, children)) = container(&child)? else {
            continue;
        };
        let depth = stack.len();
        if on_path.contains(&id) {
            return Err(
                "the pickle builds a container that contains itself (a reference cycle)".into(),
            );
        }
        // A container shared by several paths is measured once.
        if let Some(&height) = heights.get(&id) {
            if depth + height > MAX_NESTING {
                return Err(too_deep());
            }
            if let Some(frame) = stack.last_mut() {
                frame.height = frame.height.max(height);
            }
            continue;
        }
        if stack.len() >= MAX_NESTING {
            return Err(too_deep());
        }
        on_path.insert(id);
        stack.push(Frame {
            id,
            children,
            next: 0,
            height: 0,
        });
    }
    Ok(())
}

struct Machine<'a> {
    data: &'a [u8],
    position: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'a> Machine<'a> {
    /// Empties every container the memo and the stack hold, which breaks any reference
    /// cycle a rejected pickle built (they would otherwise leak).
    fn empty_containers(&mut self) {
        let values = self.memo.drain().map(|(_, value)| value);
        let values: Vec<Value> = values.chain(self.stack.drain(..)).collect();
        for value in &values {
            match value {
                Value::List(list) => {
                    if let Ok(mut list) = list.try_borrow_mut() {
                        drop_iteratively(std::mem::take(&mut list.items));
                    }
                }
                Value::Dict(dict) => {
                    if let Ok(mut dict) = dict.try_borrow_mut() {
                        let entries = std::mem::take(&mut dict.entries);
                        dict.string_keys.clear();
                        drop_iteratively(entries.into_iter().flat_map(|(k, v)| [k, v]));
                    }
                }
                _ => {}
            }
        }
        drop_iteratively(values);
    }

    fn run(&mut self, resolver: &mut dyn Resolver) -> Result<Value, String> {
        loop {
            let opcode_position = self.position;
            let opcode = self.take(1).map_err(|_| {
                "the pickle ends before its STOP opcode (truncated data)".to_string()
            })?[0];
            match self.step(opcode, resolver) {
                Ok(true) => {
                    let result = self.pop()?;
                    return Ok(result);
                }
                Ok(false) => {}
                Err(message) => {
                    return Err(format!(
                        "at byte {opcode_position} (opcode 0x{opcode:02x}): {message}"
                    ))
                }
            }
        }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self
            .position
            .checked_add(count)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "needs {count} more bytes but only {} remain (truncated data)",
                    self.data.len() - self.position
                )
            })?;
        let bytes = &self.data[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn take_line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.position..];
        let length = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a text argument has no terminating newline")?;
        let line = std::str::from_utf8(&rest[..length])
            .map_err(|_| "a text argument is not valid UTF-8".to_string())?;
        self.position += length + 1;
        Ok(line)
    }

    fn take_len(&mut self, width: usize) -> Result<usize, String> {
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(self.take(width)?);
        let length = u64::from_le_bytes(bytes);
        let remaining = (self.data.len() - self.position) as u64;
        if length > remaining {
            return Err(format!(
                "a length of {length} bytes exceeds the {remaining} bytes left (truncated or corrupt data)"
            ));
        }
        Ok(length as usize)
    }

    fn pop(&mut self) -> Result<Value, String> {
        if let Some(&mark) = self.marks.last() {
            if self.stack.len() <= mark {
                return Err("pops past a MARK (corrupt stack)".into());
            }
        }
        self.stack
            .pop()
            .ok_or_else(|| "pops from an empty stack".to_string())
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "reads an empty stack".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("needs a MARK but none is set")?;
        if mark > self.stack.len() {
            return Err("a MARK lies beyond the stack (corrupt stack)".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, index: u64) -> Result<Value, String> {
        self.memo
            .get(&index)
            .cloned()
            .ok_or_else(|| format!("memo index {index} was never stored"))
    }

    fn memo_put(&mut self, index: u64) -> Result<(), String> {
        let value = self
            .stack
            .last()
            .cloned()
            .ok_or("memoises an empty stack")?;
        self.memo.insert(index, value);
        Ok(())
    }

    fn string(&mut self, length: usize) -> Result<Value, String> {
        let bytes = self.take(length)?;
        let text = std::str::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8")?;
        Ok(Value::Str(text.into()))
    }

    fn bytes(&mut self, length: usize) -> Result<Value, String> {
        self.take(length)?;
        Ok(Value::Bytes)
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), String> {
        let Value::Dict(dict) = target else {
            return Err(format!(
                "SETITEM(S) on a {}, not a dict",
                target.type_name()
            ));
        };
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS has an odd number of items".into());
        }
        if items
            .iter()
            .any(|item| matches!(item, Value::Dict(d) if Rc::ptr_eq(d, dict)))
        {
            return Err("a dict is inserted into itself".into());
        }
        let mut dict = dict
            .try_borrow_mut()
            .map_err(|_| "a dict is inserted into itself".to_string())?;
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.insert(key, value)?;
        }
        Ok(())
    }

    fn append_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), String> {
        let Value::List(list) = target else {
            // Sets (ADDITEMS) are kept as opaque objects; their items do not matter here.
            if matches!(target, Value::Opaque(_)) {
                return Ok(());
            }
            return Err(format!("APPEND(S) on a {}, not a list", target.type_name()));
        };
        if items
            .iter()
            .any(|item| matches!(item, Value::List(l) if Rc::ptr_eq(l, list)))
        {
            return Err("a list is appended to itself".into());
        }
        let mut list = list
            .try_borrow_mut()
            .map_err(|_| "a list is appended to itself".to_string())?;
        for item in items {
            list.push(item)?;
        }
        Ok(())
    }

    fn call(
        &mut self,
        callable: Value,
        args: Value,
        resolver: &mut dyn Resolver,
    ) -> Result<Value, String> {
        let Value::Global(global) = callable else {
            return Err(format!("calls a {}, not a global", callable.type_name()));
        };
        let Value::Tuple(args, _) = args else {
            return Err(format!(
                "calls {global} with a {} instead of an argument tuple",
                args.type_name()
            ));
        };
        resolver.call(&global, &args)
    }

    /// Executes one opcode; returns true at STOP.
    fn step(&mut self, opcode: u8, resolver: &mut dyn Resolver) -> Result<bool, String> {
        match opcode {
            // PROTO
            0x80 => {
                let protocol = self.take(1)?[0];
                if protocol > 5 {
                    return Err(format!("unsupported pickle protocol {protocol}"));
                }
            }
            // FRAME: framing only groups opcodes; the length is not needed.
            0x95 => {
                self.take(8)?;
            }
            // STOP
            b'.' => return Ok(true),
            // MARK
            b'(' => self.marks.push(self.stack.len()),
            // POP
            b'0' => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            // POP_MARK
            b'1' => {
                self.pop_mark()?;
            }
            // DUP
            b'2' => {
                let value = self.top()?.clone();
                self.stack.push(value);
            }
            // NONE, NEWTRUE, NEWFALSE
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            // BININT, BININT1, BININT2
            b'J' => {
                let value = i32::from_le_bytes(self.take_array()?);
                self.stack.push(Value::Int(value.into()));
            }
            b'K' => {
                let value = self.take(1)?[0];
                self.stack.push(Value::Int(value.into()));
            }
            b'M' => {
                let value = u16::from_le_bytes(self.take_array()?);
                self.stack.push(Value::Int(value.into()));
            }
            // LONG1, LONG4: little-endian two's complement of any length.
            0x8a | 0x8b => {
                let width = if opcode == 0x8a { 1 } else { 4 };
                let length = self.take_len(width)?;
                let bytes = self.take(length)?;
                self.stack.push(Value::Int(long_from_bytes(bytes)?));
            }
            // INT (text; also encodes booleans as 00/01)
            b'I' => {
                let line = self.take_line()?;
                let value = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(
                        line.parse()
                            .map_err(|_| format!("INT argument {line:?} is not an integer"))?,
                    ),
                };
                self.stack.push(value);
            }
            // LONG (text)
            b'L' => {
                let line = self.take_line()?;
                let digits = line.strip_suffix('L').unwrap_or(line);
                let value = digits
                    .parse()
                    .map_err(|_| format!("LONG argument {line:?} is not a 64-bit integer"))?;
                self.stack.push(Value::Int(value));
            }
            // BINFLOAT (big-endian), FLOAT (text)
            b'G' => {
                self.take(8)?;
                self.stack.push(Value::Float);
            }
            b'F' => {
                let line = self.take_line()?;
                line.parse::<f64>()
                    .map_err(|_| format!("FLOAT argument {line:?} is not a number"))?;
                self.stack.push(Value::Float);
            }
            // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
            b'X' => {
                let length = self.take_len(4)?;
                let value = self.string(length)?;
                self.stack.push(value);
            }
            0x8c => {
                let length = self.take_len(1)?;
                let value = self.string(length)?;
                self.stack.push(value);
            }
            0x8d => {
                let length = self.take_len(8)?;
                let value = self.string(length)?;
                self.stack.push(value);
            }
            // BINSTRING, SHORT_BINSTRING (Python 2 byte strings, read as text)
            b'T' => {
                let length = self.take_len(4)?;
                let value = self.string(length)?;
                self.stack.push(value);
            }
            b'U' => {
                let length = self.take_len(1)?;
                let value = self.string(length)?;
                self.stack.push(value);
            }
            // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
            b'B' => {
                let length = self.take_len(4)?;
                let value = self.bytes(length)?;
                self.stack.push(value);
            }
            b'C' => {
                let length = self.take_len(1)?;
                let value = self.bytes(length)?;
                self.stack.push(value);
            }
            0x8e | 0x96 => {
                let length = self.take_len(8)?;
                let value = self.bytes(length)?;
                self.stack.push(value);
            }
            // EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3
            b')' => self.stack.push(Value::tuple(Vec::new())?),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::tuple(items)?);
            }
            0x85..=0x87 => {
                let count = usize::from(opcode - 0x84);
                if self.stack.len() < count {
                    return Err(format!("TUPLE{count} needs {count} stack items"));
                }
                let mut items = vec![Value::None; count];
                for slot in items.iter_mut().rev() {
                    *slot = self.pop()?;
                }
                self.stack.push(Value::tuple(items)?);
            }
            // EMPTY_LIST, LIST
            b']' => self.stack.push(Value::List(Default::default())),
            b'l' => {
                let items = self.pop_mark()?;
                let list = Value::List(Default::default());
                self.append_items(&list, items)?;
                self.stack.push(list);
            }
            // APPEND, APPENDS (ADDITEMS for sets, kept opaque)
            b'a' => {
                let item = self.pop()?;
                let target = self.top()?.clone();
                self.append_items(&target, vec![item])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.append_items(&target, items)?;
            }
            // EMPTY_DICT, DICT
            b'}' => self.stack.push(Value::Dict(Default::default())),
            b'd' => {
                let items = self.pop_mark()?;
                let dict = Value::Dict(Default::default());
                self.set_items(&dict, items)?;
                self.stack.push(dict);
            }
            // SETITEM, SETITEMS
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                let target = self.top()?.clone();
                self.set_items(&target, vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.set_items(&target, items)?;
            }
            // EMPTY_SET, FROZENSET: their content never matters for weights.
            0x8f => self.stack.push(Value::Opaque(Rc::new(GlobalRef {
                module: "builtins".into(),
                name: "set".into(),
            }))),
            0x91 => {
                self.pop_mark()?;
                self.stack.push(Value::Opaque(Rc::new(GlobalRef {
                    module: "builtins".into(),
                    name: "frozenset".into(),
                })));
            }
            // GLOBAL, STACK_GLOBAL
            b'c' => {
                let module = self.take_line()?.to_string();
                let name = self.take_line()?.to_string();
                self.stack
                    .push(Value::Global(Rc::new(GlobalRef { module, name })));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err(format!(
                        "STACK_GLOBAL needs two strings, got {} and {}",
                        module.type_name(),
                        name.type_name()
                    ));
                };
                self.stack.push(Value::Global(Rc::new(GlobalRef {
                    module: module.to_string(),
                    name: name.to_string(),
                })));
            }
            // REDUCE
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.call(callable, args, resolver)?;
                self.stack.push(result);
            }
            // NEWOBJ, NEWOBJ_EX: `cls.__new__(cls, *args)`; kept as an opaque object.
            0x81 => {
                let _args = self.pop()?;
                let class = self.pop()?;
                self.stack.push(opaque_instance(&class)?);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let _args = self.pop()?;
                let class = self.pop()?;
                self.stack.push(opaque_instance(&class)?);
            }
            // BUILD: sets an object's state; weights never depend on it (for a state
            // dict it is the `_metadata` attribute of the OrderedDict).
            b'b' => {
                let _state = self.pop()?;
                let target = self.top()?;
                match target {
                    Value::Dict(_) | Value::Opaque(_) | Value::Tensor(_) | Value::List(_) => {}
                    other => return Err(format!("BUILD on a {}", other.type_name())),
                }
            }
            // BINPERSID
            b'Q' => {
                let pid = self.pop()?;
                let value = resolver.persistent_load(pid)?;
                self.stack.push(value);
            }
            // BINGET, LONG_BINGET, GET
            b'h' => {
                let index = self.take(1)?[0];
                let value = self.memo_get(index.into())?;
                self.stack.push(value);
            }
            b'j' => {
                let index = u32::from_le_bytes(self.take_array()?);
                let value = self.memo_get(index.into())?;
                self.stack.push(value);
            }
            b'g' => {
                let line = self.take_line()?;
                let index = line
                    .parse()
                    .map_err(|_| format!("GET index {line:?} is not a number"))?;
                let value = self.memo_get(index)?;
                self.stack.push(value);
            }
            // BINPUT, LONG_BINPUT, PUT, MEMOIZE
            b'q' => {
                let index = self.take(1)?[0];
                self.memo_put(index.into())?;
            }
            b'r' => {
                let index = u32::from_le_bytes(self.take_array()?);
                self.memo_put(index.into())?;
            }
            b'p' => {
                let line = self.take_line()?;
                let index = line
                    .parse()
                    .map_err(|_| format!("PUT index {line:?} is not a number"))?;
                self.memo_put(index)?;
            }
            0x94 => {
                let index = self.memo.len() as u64;
                self.memo_put(index)?;
            }
            other => {
                let known = match other {
                    b'P' => " (PERSID, text persistent ids)",
                    b'i' | b'o' => " (INST/OBJ, protocol 0 objects)",
                    0x82..=0x84 => " (EXT, extension registry)",
                    0x97 | 0x98 => " (out-of-band buffers)",
                    _ => "",
                };
                return Err(format!(
                    "unknown or unsupported opcode 0x{other:02x}{known}"
                ));
            }
        }
        Ok(false)
    }
}

fn opaque_instance(class: &Value) -> Result<Value, String> {
    match class {
        Value::Global(global) => Ok(Value::Opaque(global.clone())),
        other => Err(format!("NEWOBJ on a {}, not a class", other.type_name())),
    }
}

/// Decodes a LONG1/LONG4 integer (little-endian two's complement).
fn long_from_bytes(bytes: &[u8]) -> Result<i64, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    // Longer encodings are fine if the extra high bytes are only sign extension.
    if bytes.len() > 8 && bytes[8..].iter().any(|&b| b != fill) {
        return Err(format!(
            "an integer of {} bytes does not fit in 64 bits",
            bytes.len()
        ));
    }
    let mut buffer = [fill; 8];
    let used = bytes.len().min(8);
    buffer[..used].copy_from_slice(&bytes[..used]);
    let value = i64::from_le_bytes(buffer);
    if (value < 0) != negative {
        return Err(format!(
            "an integer of {} bytes does not fit in 64 bits",
            bytes.len()
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves nothing: only plain data is expected.
    struct NoResolver;

    impl Resolver for NoResolver {
        fn persistent_load(&mut self, _pid: Value) -> Result<Value, String> {
            Err("no persistent ids here".into())
        }
        fn call(&mut self, callable: &GlobalRef, _args: &[Value]) -> Result<Value, String> {
            Ok(Value::Opaque(Rc::new(callable.clone())))
        }
    }

    fn run(bytes: &[u8]) -> Result<Value, String> {
        unpickle(bytes, &mut NoResolver)
    }

    fn int(value: &Value) -> i64 {
        value.as_int().expect("an int")
    }

    #[test]
    fn integers_of_every_encoding() {
        // BININT1, BININT2, BININT, LONG1 (negative), LONG1 with sign padding, text INT.
        let value = run(b"\x80\x02(K\x07M\x00\x01J\xff\xff\xff\xff\x8a\x02\x00\xff\x8a\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00I42\nt.")
            .unwrap();
        let items: Vec<i64> = value.as_sequence().unwrap().iter().map(int).collect();
        assert_eq!(items, vec![7, 256, -1, -256, 1, 42]);
        let too_big = run(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.");
        assert!(too_big.unwrap_err().contains("does not fit in 64 bits"));
    }

    #[test]
    fn dict_keys_overwrite_and_keep_order() {
        // {'a': 1, 'b': 2, 'a': 3} via SETITEMS, then SETITEM 'c'.
        let value = run(b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03uX\x01\x00\x00\x00cK\x04s.")
            .unwrap();
        let Value::Dict(dict) = value else {
            panic!("not a dict")
        };
        let dict = dict.borrow();
        let keys: Vec<String> = dict
            .entries
            .iter()
            .map(|(k, _)| match k {
                Value::Str(s) => s.to_string(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(keys, vec!["a", "b", "c"]);
        assert_eq!(int(dict.get("a").unwrap()), 3);
    }

    #[test]
    fn protocol_4_memo_and_stack_global() {
        // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINGET of the memoised string.
        let value = run(
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x01m\x94\x8c\x01n\x94\x93h\x00\x86.",
        )
        .unwrap();
        let items = value.as_sequence().unwrap();
        assert_eq!(items[0].type_name(), "global m.n");
        assert!(matches!(&items[1], Value::Str(s) if &**s == "m"));
    }

    #[test]
    fn malformed_programs_are_errors() {
        let cases: [(&[u8], &str); 8] = [
            (b"\x80\x02", "STOP"),
            (b"\x80\x06.", "protocol 6"),
            (b"\x80\x02h\x03.", "memo index 3"),
            (b"\x80\x02t.", "MARK"),
            (b"\x80\x02K\x01(\x85.", "past a MARK"),
            (b"\x80\x02]K\x01K\x02s.", "not a dict"),
            (b"\x80\x02cmod\nname", "newline"),
            (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", "UTF-8"),
        ];
        for (bytes, expected) in cases {
            let message = run(bytes).unwrap_err();
            assert!(message.contains(expected), "{bytes:?}: {message}");
        }
    }

    #[test]
    fn self_insertion_is_an_error_not_a_panic() {
        // d = {}; d['x'] = d  (memo 0 holds the dict being filled).
        let Err(message) = run(b"\x80\x02}q\x00X\x01\x00\x00\x00xh\x00s.") else {
            panic!("self insertion accepted");
        };
        assert!(message.contains("into itself"), "{message}");
    }

    /// A list of `levels` nested lists, each nested while still empty and filled
    /// afterwards through the memo, so no check made while building sees the depth.
    fn chain_filled_through_memo(levels: u32) -> Vec<u8> {
        let mut bytes = b"\x80\x02]r\x00\x00\x00\x00".to_vec();
        for level in 1..levels {
            bytes.push(b'j');
            bytes.extend((level - 1).to_le_bytes());
            bytes.extend(b"]r");
            bytes.extend(level.to_le_bytes());
            bytes.extend(b"a0");
        }
        bytes.push(b'.');
        bytes
    }

    #[test]
    fn nesting_built_through_the_memo_is_measured_and_freed_without_recursion() {
        // Within the limit: accepted.
        let value = run(&chain_filled_through_memo(MAX_NESTING as u32)).unwrap();
        assert_eq!(value.type_name(), "list");
        drop(value);
        // 100,000 levels overflowed a 2 MiB stack when dropped; run on such a thread.
        let bytes = chain_filled_through_memo(100_000);
        let message = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || run(&bytes).unwrap_err())
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(message.contains("nested deeper than 1000"), "{message}");
        // An accepted deep value (built in pieces under the limit) also drops iteratively.
        let deep = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let mut value = Value::List(Default::default());
                for _ in 0..200_000 {
                    let outer = Rc::new(RefCell::new(List::default()));
                    outer.borrow_mut().items.push(value);
                    value = Value::List(outer);
                }
                drop(value);
            })
            .unwrap()
            .join();
        assert!(deep.is_ok());
    }

    #[test]
    fn reference_cycles_are_refused() {
        // l0 = []; l1 = []; l0.append(l1); l1.append(l0)
        let Err(message) = run(b"\x80\x02]q\x00]q\x01ah\x01h\x00a0.") else {
            panic!("cycle accepted");
        };
        assert!(message.contains("reference cycle"), "{message}");
    }
}
