/// The globals a checkpoint pickle may name (see Pickle.swift), by what the reader lets them do.
enum PickleGlobal {
    case reconstruct, frombuffer, ndarray, dtype, codecsEncode, bfloat16, quantizedWeight8bit

    /// "module.name" → global. numpy 1.x pickles name `numpy.core.*`, numpy 2 `numpy._core.*`.
    static let allowed: [String: PickleGlobal] = [
        "numpy.core.multiarray._reconstruct": .reconstruct, "numpy._core.multiarray._reconstruct": .reconstruct,
        "numpy.core.numeric._frombuffer": .frombuffer, "numpy._core.numeric._frombuffer": .frombuffer,
        "numpy.ndarray": .ndarray, "numpy.dtype": .dtype, "_codecs.encode": .codecsEncode,
        "ml_dtypes.bfloat16": .bfloat16, "__main__.QuantizedWeight8bit": .quantizedWeight8bit,
    ]
}

/// A value on the pickle machine's stack or in its memo. Dicts, arrays under construction and
/// objects are references, so that a memo entry sees what BUILD and SETITEMS do to them.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case string(String)
    case bytes(UnsafeRawBufferPointer)
    case tuple([PickleValue], depth: Int)
    case dict(PickleDict)
    case global(PickleGlobal, name: String)
    case dtype(PickleDType)
    case array(PickleArrayBox)
    case object(PickleObjectBox)

    /// Nesting depth of containers (0 for everything else).
    var depth: Int {
        switch self {
        case .tuple(_, let depth): return depth
        case .dict(let dict): return dict.depth
        default: return 0
        }
    }

    /// What the value is, for messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return "int \(i)"
        case .string(let s): return "str \(quoted(String(s.prefix(40))))"
        case .bytes(let b): return "bytes (\(b.count))"
        case .tuple(let items, _): return "a tuple of \(items.count)"
        case .dict: return "a dict"
        case .global(_, let name): return name
        case .dtype(let t): return "dtype \(t.rawValue)"
        case .array: return "an ndarray"
        case .object: return "a QuantizedWeight8bit"
        }
    }
}

/// A dict with string keys. It is frozen once used as a value anywhere (a tuple element, a dict
/// value, BUILD state): no mutation after use, so no cycles and no hidden nesting.
final class PickleDict {
    var items: [String: PickleValue] = [:]
    var depth = 1
    var frozen = false
}

/// An array made by `_reconstruct`, filled by BUILD.
final class PickleArrayBox {
    var array: PickleArray?
    init(_ array: PickleArray? = nil) { self.array = array }
}

/// A `QuantizedWeight8bit` made by NEWOBJ, filled by BUILD.
final class PickleObjectBox {
    var fields: (weight: PickleArray, scales: PickleArray)?
}

/// Interprets one pickle stream; see Pickle.swift for what it accepts.
struct PickleMachine {
    /// Deepest nesting of tuples and dicts accepted (numpy's states nest 2 deep).
    static let maximumDepth = 32

    let file: String
    let bytes: UnsafeRawBufferPointer
    /// Payload copies made for protocol 2 (`_codecs.encode`); the caller owns them.
    var copies: [UnsafeMutableRawBufferPointer] = []
    private var position = 0
    private var start = 0          // offset of the current opcode
    private var code: UInt8 = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(file: String, bytes: UnsafeRawBufferPointer) {
        self.file = file
        self.bytes = bytes
    }

    /// Runs to STOP, which must end the file, and returns the array or quantized weight it left.
    mutating func run() throws -> PickleLeaf {
        while true {
            start = position
            guard position < bytes.count else {
                throw CheckpointError(file: file, field: "pickle offset \(position)",
                                      expected: "an opcode (a pickle ends with STOP)",
                                      found: bytes.isEmpty ? "an empty file" : "the end of the file (truncated?)")
            }
            code = bytes[position]
            position += 1
            if code == 0x2E { return try stop() }   // STOP
            try step()
        }
    }

    private mutating func step() throws {
        switch code {
        case 0x80:  // PROTO
            let version = try u8()
            guard (2...5).contains(version) else { throw refuse("protocol 2 to 5", found: "\(version)") }
        case 0x95:  // FRAME: a length hint; the stream continues the same either way
            let length = try u64()
            guard length <= UInt64(bytes.count - position) else { throw truncated(Int(clamping: length)) }
        case 0x28: marks.append(stack.count)                                         // MARK
        case 0x4E: stack.append(.none)                                               // NONE
        case 0x88: stack.append(.bool(true))                                         // NEWTRUE
        case 0x89: stack.append(.bool(false))                                        // NEWFALSE
        case 0x4B: stack.append(.int(Int(try u8())))                                 // BININT1
        case 0x4D: stack.append(.int(Int(try u16())))                                // BININT2
        case 0x4A: stack.append(.int(Int(Int32(bitPattern: try u32()))))            // BININT
        case 0x8A: stack.append(.int(try long1()))                                   // LONG1
        case 0x8C: stack.append(.string(try string(Int(try u8()))))                 // SHORT_BINUNICODE
        case 0x58: stack.append(.string(try string(Int(try u32()))))                // BINUNICODE
        case 0x8D: stack.append(.string(try string(try length64())))                // BINUNICODE8
        case 0x43: stack.append(.bytes(try take(Int(try u8()))))                    // SHORT_BINBYTES
        case 0x42: stack.append(.bytes(try take(Int(try u32()))))                   // BINBYTES
        case 0x8E, 0x96: stack.append(.bytes(try take(try length64())))             // BINBYTES8, BYTEARRAY8
        case 0x29: stack.append(.tuple([], depth: 1))                                // EMPTY_TUPLE
        case 0x85, 0x86, 0x87: try makeTuple(count: Int(code - 0x84))                // TUPLE1-3
        case 0x74: try makeTuple(count: stack.count - (try topMark()))              // TUPLE
        case 0x7D: stack.append(.dict(PickleDict()))                                 // EMPTY_DICT
        case 0x64:                                                                   // DICT
            let pairs = try popToMark()
            let dict = PickleDict()
            try setItems(pairs, in: dict)
            stack.append(.dict(dict))
        case 0x73:                                                                   // SETITEM
            let value = try pop(), key = try pop()
            try setItems([key, value], in: try dictOnTop())
        case 0x75:                                                                   // SETITEMS
            let pairs = try popToMark()
            try setItems(pairs, in: try dictOnTop())
        case 0x63:                                                                   // GLOBAL
            let module = try line(), name = try line()
            stack.append(try global(module, name))
        case 0x93:                                                                   // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard case .string(let m) = module, case .string(let n) = name else {
                throw refuse("module and name strings", found: "\(module.kind) and \(name.kind)")
            }
            stack.append(try global(m, n))
        case 0x52: try reduce()                                                      // REDUCE
        case 0x81: try newObject()                                                   // NEWOBJ
        case 0x62: try build()                                                       // BUILD
        case 0x94: memo[memo.count] = try peek()                                     // MEMOIZE
        case 0x71: memo[Int(try u8())] = try peek()                                  // BINPUT
        case 0x72: memo[Int(try u32())] = try peek()                                 // LONG_BINPUT
        case 0x68: try get(Int(try u8()))                                            // BINGET
        case 0x6A: try get(Int(try u32()))                                           // LONG_BINGET
        default:
            throw refuse("an opcode used to pickle numpy arrays and QuantizedWeight8bit",
                         found: "an opcode this reader does not interpret")
        }
    }

    // MARK: - Calls

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        let qualified = "\(module).\(name)"
        guard let global = PickleGlobal.allowed[qualified] else {
            throw refuse("a global on the allow-list (numpy arrays, ml_dtypes.bfloat16, __main__.QuantizedWeight8bit)",
                         found: qualified)
        }
        return .global(global, name: qualified)
    }

    private mutating func reduce() throws {
        let arguments = try pop(), callable = try pop()
        guard case .global(let global, let name) = callable else { throw refuse("a callable global", found: callable.kind) }
        guard case .tuple(let args, _) = arguments else { throw refuse("an argument tuple for \(name)", found: arguments.kind) }
        switch (global, args.count) {
        case (.reconstruct, 3):   // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills
            guard case .global(.ndarray, _) = args[0] else { throw refuse("_reconstruct(numpy.ndarray, …)", found: args[0].kind) }
            stack.append(.array(PickleArrayBox()))
        case (.dtype, 3):         // dtype(descr, align, copy)
            stack.append(.dtype(try dtype(args[0])))
        case (.frombuffer, 4):    // _frombuffer(buffer, dtype, shape, order): protocol 5
            guard case .bytes(let payload) = args[0], case .dtype(let type) = args[1],
                  case .string(let order) = args[3], order == "C" || order == "F" else {
                throw refuse("_frombuffer(bytes, dtype, shape, 'C' or 'F')", found: args.map(\.kind).joined(separator: ", "))
            }
            stack.append(.array(PickleArrayBox(try array(type, shape: args[2], fortran: order == "F", payload))))
        case (.codecsEncode, 2):  // _codecs.encode(text, 'latin1'): protocol 2's bytes
            guard case .string(let text) = args[0], case .string("latin1") = args[1] else {
                throw refuse("_codecs.encode(str, 'latin1')", found: args.map(\.kind).joined(separator: ", "))
            }
            stack.append(.bytes(try latin1(text)))
        default:
            throw refuse("REDUCE of numpy's _reconstruct, dtype or _frombuffer, or _codecs.encode, with their arguments",
                         found: "\(name) with \(args.count) arguments")
        }
    }

    private mutating func newObject() throws {
        let arguments = try pop(), cls = try pop()
        guard case .global(.quantizedWeight8bit, _) = cls, case .tuple(let args, _) = arguments, args.isEmpty else {
            throw refuse("NEWOBJ of __main__.QuantizedWeight8bit with no arguments", found: "\(cls.kind) with \(arguments.kind)")
        }
        stack.append(.object(PickleObjectBox()))
    }

    /// BUILD: `__setstate__` of the object below the state, which stays on the stack.
    private mutating func build() throws {
        let state = try pop()
        let target = try peek()
        switch target {
        case .dtype(let type):   // (version, byte order, subarray, names, fields, elsize, alignment, flags)
            guard case .tuple(let items, _) = state, items.count == 8, case .string(let order) = items[1] else {
                throw refuse("a dtype state (8-tuple with a byte order)", found: state.kind)
            }
            guard order == "<" || order == "|" || order == "=" else {
                throw refuse("a little-endian dtype ('<', '|' or '=')", found: "byte order \(quoted(order)) for \(type.rawValue)")
            }
            if case .int(let size) = items[5], size != -1, size != type.size {
                throw refuse("element size \(type.size) for \(type.rawValue)", found: "\(size)")
            }
        case .array(let box) where box.array == nil:   // (version, shape, dtype, is_fortran, data)
            guard case .tuple(let items, _) = state, items.count == 5, case .dtype(let type) = items[2],
                  case .bool(let fortran) = items[3], case .bytes(let payload) = items[4] else {
                throw refuse("an ndarray state (version, shape, dtype, is_fortran, bytes)", found: state.kind)
            }
            box.array = try array(type, shape: items[1], fortran: fortran, payload)
        case .object(let box) where box.fields == nil:
            guard case .dict(let dict) = state, dict.items.count == 2,
                  case .array(let weight)? = dict.items["weight"], let w = weight.array,
                  case .array(let scales)? = dict.items["scales"], let s = scales.array else {
                throw refuse("a QuantizedWeight8bit state {'weight': ndarray, 'scales': ndarray}",
                             found: "\(state.kind)\(stateKeys(state))")
            }
            box.fields = (w, s)
        default:
            throw refuse("BUILD of a dtype, or of an ndarray or QuantizedWeight8bit not built yet", found: target.kind)
        }
    }

    private func stateKeys(_ state: PickleValue) -> String {
        guard case .dict(let dict) = state else { return "" }
        return " with keys " + dict.items.keys.sorted().joined(separator: ", ")
    }

    private func dtype(_ descr: PickleValue) throws -> PickleDType {
        switch descr {
        case .string("f4"): return .float32
        case .string("i1"): return .int8
        case .global(.bfloat16, _): return .bfloat16
        default: throw refuse("dtype f4, i1 or ml_dtypes.bfloat16", found: descr.kind)
        }
    }

    private func array(_ type: PickleDType, shape value: PickleValue, fortran: Bool, _ payload: UnsafeRawBufferPointer) throws -> PickleArray {
        guard case .tuple(let items, _) = value else { throw refuse("a shape tuple", found: value.kind) }
        var shape: [Int] = [], count = 1
        for item in items {
            guard case .int(let n) = item, n >= 0 else { throw refuse("a shape of integers ≥ 0", found: item.kind) }
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { throw refuse("a shape smaller than 2^63 elements", found: "\(items.map(\.kind))") }
            shape.append(n)
            count = product
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: type.size)
        guard !overflow, byteCount == payload.count else {
            throw refuse("\(count) × \(type.size) bytes of \(type.rawValue) data for shape \(shape)", found: "\(payload.count) bytes")
        }
        return PickleArray(dtype: type, shape: shape, fortranOrder: fortran, bytes: payload)
    }

    private mutating func latin1(_ text: String) throws -> UnsafeRawBufferPointer {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: text.unicodeScalars.count, alignment: 16)
        copies.append(copy)
        for (i, scalar) in text.unicodeScalars.enumerated() {
            guard scalar.value <= 0xFF else { throw refuse("latin-1 text", found: "U+\(String(scalar.value, radix: 16, uppercase: true))") }
            copy[i] = UInt8(scalar.value)
        }
        return UnsafeRawBufferPointer(copy)
    }

    // MARK: - Stack, memo, containers

    private func peek() throws -> PickleValue {
        guard let top = stack.last, stack.count > (marks.last ?? 0) else { throw refuse("a value on the stack", found: "none") }
        return top
    }

    private mutating func pop() throws -> PickleValue {
        let top = try peek()
        stack.removeLast()
        if case .dict(let dict) = top { dict.frozen = true }
        return top
    }

    private mutating func topMark() throws -> Int {
        guard let mark = marks.popLast() else { throw refuse("a MARK before it", found: "none") }
        return mark
    }

    private mutating func popToMark() throws -> [PickleValue] {
        let mark = try topMark()
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        for case .dict(let dict) in items { dict.frozen = true }
        return items
    }

    private mutating func makeTuple(count: Int) throws {
        var items: [PickleValue] = []
        for _ in 0..<count { items.append(try pop()) }
        items.reverse()
        let depth = 1 + (items.map(\.depth).max() ?? 0)
        guard depth <= Self.maximumDepth else { throw refuse("tuples and dicts nested at most \(Self.maximumDepth) deep", found: "deeper") }
        stack.append(.tuple(items, depth: depth))
    }

    private func dictOnTop() throws -> PickleDict {
        let top = try peek()
        guard case .dict(let dict) = top else { throw refuse("a dict being filled", found: top.kind) }
        guard !dict.frozen else { throw refuse("a dict being filled", found: "a dict already used as a value") }
        return dict
    }

    private func setItems(_ pairs: [PickleValue], in dict: PickleDict) throws {
        guard pairs.count % 2 == 0 else { throw refuse("key-value pairs", found: "\(pairs.count) values") }
        for i in stride(from: 0, to: pairs.count, by: 2) {
            guard case .string(let key) = pairs[i] else { throw refuse("a string key", found: pairs[i].kind) }
            let value = pairs[i + 1]
            guard value.depth < Self.maximumDepth else { throw refuse("tuples and dicts nested at most \(Self.maximumDepth) deep", found: "deeper") }
            dict.items[key] = value
            dict.depth = max(dict.depth, 1 + value.depth)
        }
    }

    private mutating func get(_ index: Int) throws {
        guard let value = memo[index] else { throw refuse("a memo index stored earlier", found: "\(index)") }
        stack.append(value)
    }

    private func stop() throws -> PickleLeaf {
        guard marks.isEmpty, stack.count == 1 else {
            throw refuse("exactly one value on the stack at STOP", found: "\(stack.count) values and \(marks.count) open marks")
        }
        guard position == bytes.count else { throw refuse("the end of the file after STOP", found: "\(bytes.count - position) more bytes") }
        switch stack[0] {
        case .array(let box) where box.array != nil: return .array(box.array!)
        case .object(let box) where box.fields != nil: return .quantized(weight: box.fields!.weight, scales: box.fields!.scales)
        default: throw refuse("a numpy array or a QuantizedWeight8bit", found: stack[0].kind)
        }
    }

    // MARK: - Reading

    private func refuse(_ expected: String, found: String) -> CheckpointError {
        let name = Self.opcodeNames[code].map { " \($0)" } ?? ", not a pickle opcode"
        return CheckpointError(file: file, field: "pickle offset \(start) opcode 0x\(hexByte(code))\(name)",
                               expected: expected, found: found)
    }

    private func truncated(_ count: Int) -> CheckpointError {
        refuse("\(count) bytes at offset \(position)", found: "only \(bytes.count - position) before the end of the file (truncated?)")
    }

    private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count <= bytes.count - position else { throw truncated(count) }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
    }

    private mutating func u8() throws -> UInt8 { try take(1)[0] }
    private mutating func u16() throws -> UInt16 { UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self)) }
    private mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    private mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }

    private mutating func length64() throws -> Int {
        let length = try u64()
        guard length <= UInt64(bytes.count - position) else { throw truncated(Int(clamping: length)) }
        return Int(length)
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes.
    private mutating func long1() throws -> Int {
        let count = Int(try u8())
        guard count <= 8 else { throw refuse("an integer of at most 8 bytes", found: "\(count) bytes") }
        let digits = try take(count)
        var value: UInt64 = 0
        for (i, byte) in digits.enumerated() { value |= UInt64(byte) << (8 * i) }
        if count > 0, count < 8, digits[count - 1] & 0x80 != 0 { value |= ~0 << (8 * count) }   // sign-extend
        return Int(Int64(bitPattern: value))
    }

    private mutating func string(_ count: Int) throws -> String {
        let raw = try take(count)
        let text = String(decoding: raw, as: UTF8.self)
        guard text.utf8.elementsEqual(raw) else { throw refuse("UTF-8 text", found: "\(count) bytes that are not") }
        return text
    }

    /// A GLOBAL operand: text up to a newline (at most 256 bytes).
    private mutating func line() throws -> String {
        let end = min(bytes.count, position + 256)
        guard let newline = bytes[position..<end].firstIndex(of: 0x0A) else {
            throw refuse("a module or name ending in a newline within 256 bytes", found: "none")
        }
        let text = try string(newline - position)
        position += 1
        return text
    }

    /// The names of all pickle opcodes (protocols 0-5), for messages.
    static let opcodeNames: [UInt8: String] = {
        let names: [(Character, String)] = [
            ("(", "MARK"), (".", "STOP"), ("0", "POP"), ("1", "POP_MARK"), ("2", "DUP"), ("F", "FLOAT"), ("I", "INT"),
            ("J", "BININT"), ("K", "BININT1"), ("L", "LONG"), ("M", "BININT2"), ("N", "NONE"), ("P", "PERSID"),
            ("Q", "BINPERSID"), ("R", "REDUCE"), ("S", "STRING"), ("T", "BINSTRING"), ("U", "SHORT_BINSTRING"),
            ("V", "UNICODE"), ("X", "BINUNICODE"), ("a", "APPEND"), ("b", "BUILD"), ("c", "GLOBAL"), ("d", "DICT"),
            ("}", "EMPTY_DICT"), ("e", "APPENDS"), ("g", "GET"), ("h", "BINGET"), ("i", "INST"), ("j", "LONG_BINGET"),
            ("l", "LIST"), ("]", "EMPTY_LIST"), ("o", "OBJ"), ("p", "PUT"), ("q", "BINPUT"), ("r", "LONG_BINPUT"),
            ("s", "SETITEM"), ("t", "TUPLE"), (")", "EMPTY_TUPLE"), ("u", "SETITEMS"), ("G", "BINFLOAT"),
            ("B", "BINBYTES"), ("C", "SHORT_BINBYTES"),
        ]
        var table = Dictionary(uniqueKeysWithValues: names.map { (UInt8($0.0.asciiValue!), $0.1) })
        let high = ["PROTO", "NEWOBJ", "EXT1", "EXT2", "EXT4", "TUPLE1", "TUPLE2", "TUPLE3", "NEWTRUE", "NEWFALSE",
                    "LONG1", "LONG4", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES8", "EMPTY_SET", "ADDITEMS",
                    "FROZENSET", "NEWOBJ_EX", "STACK_GLOBAL", "MEMOIZE", "FRAME", "BYTEARRAY8", "NEXT_BUFFER",
                    "READONLY_BUFFER"]
        for (i, name) in high.enumerated() { table[0x80 + UInt8(i)] = name }
        return table
    }()
}
