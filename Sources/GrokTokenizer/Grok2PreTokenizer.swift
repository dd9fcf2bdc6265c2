// The Grok-2 ("grok-2") pre-tokenizer as a hand-written scanner, and GPT-2's byte <-> unicode mapping.
//
// It implements exactly the leftmost-first alternation of
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// over Unicode scalars, with \p{L} = general category L*, \p{N} = N*, \s = the White_Space property. The end of
// the scanned range counts as the end of the input (text between special tokens is pre-tokenized on its own).

/// Character classes the regex distinguishes.
struct ScalarClass: OptionSet {
    let rawValue: UInt8
    static let letter = ScalarClass(rawValue: 1)
    static let number = ScalarClass(rawValue: 2)
    static let space = ScalarClass(rawValue: 4)     // \s
    static let newline = ScalarClass(rawValue: 8)   // \r or \n

    private static let ascii: [ScalarClass] = (0..<128).map { compute(UInt32($0)) }

    @inline(__always)
    static func of(_ v: UInt32) -> ScalarClass {
        v < 128 ? ascii[Int(v)] : compute(v)
    }

    static func compute(_ v: UInt32) -> ScalarClass {
        guard let u = Unicode.Scalar(v) else { return [] }
        var c: ScalarClass = []
        let p = u.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            c.insert(.number)
        default:
            break
        }
        if p.isWhitespace { c.insert(.space) }
        if v == 0x0A || v == 0x0D { c.insert(.newline) }
        return c
    }
}

/// Calls `emit` with each pre-token of `s[range]`, in order; the pre-tokens tile the range.
func grok2PreTokenize(_ s: [UInt32], _ range: Range<Int>, _ emit: (Range<Int>) -> Void) {
    let end = range.upperBound
    var i = range.lowerBound
    @inline(__always) func cls(_ k: Int) -> ScalarClass { ScalarClass.of(s[k]) }
    @inline(__always) func isOther(_ k: Int) -> Bool { cls(k).isDisjoint(with: [.letter, .number, .space]) }
    @inline(__always) func lower(_ k: Int) -> UInt32 {
        let v = s[k]
        return (v >= 0x41 && v <= 0x5A) ? v + 0x20 : v
    }

    while i < end {
        let start = i
        let c = cls(i)

        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if s[i] == 0x27 && i + 1 < end {
            let a = lower(i + 1)
            if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 {  // s t m d
                i += 2; emit(start..<i); continue
            }
            if i + 2 < end {
                let b = lower(i + 2)
                if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) {  // re ve ll
                    i += 3; emit(start..<i); continue
                }
            }
        }

        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if c.contains(.letter) {
            i += 1
            while i < end && cls(i).contains(.letter) { i += 1 }
            emit(start..<i); continue
        }
        if c.isDisjoint(with: [.newline, .letter, .number]) && i + 1 < end && cls(i + 1).contains(.letter) {
            i += 2
            while i < end && cls(i).contains(.letter) { i += 1 }
            emit(start..<i); continue
        }

        // 3. \p{N}
        if c.contains(.number) {
            i += 1; emit(start..<i); continue
        }

        // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
        var j = i
        if s[j] == 0x20 && j + 1 < end && isOther(j + 1) { j += 1 }
        if j < end && isOther(j) {
            j += 1
            while j < end && isOther(j) { j += 1 }
            while j < end && cls(j).contains(.newline) { j += 1 }
            i = j; emit(start..<i); continue
        }

        // 5-7 all start with whitespace.
        if c.contains(.space) {
            var wsEnd = i + 1
            var lastNewline = c.contains(.newline) ? i : -1
            while wsEnd < end {
                let k = cls(wsEnd)
                if !k.contains(.space) { break }
                if k.contains(.newline) { lastNewline = wsEnd }
                wsEnd += 1
            }
            // 5. \s*[\r\n]+  -> up to and including the last newline of the whitespace run
            if lastNewline >= 0 {
                i = lastNewline + 1; emit(start..<i); continue
            }
            // 6. \s+(?!\S)  -> the whole run at the end of input, else all but its last character
            if wsEnd == end {
                i = wsEnd; emit(start..<i); continue
            }
            if wsEnd - 1 > i {
                i = wsEnd - 1; emit(start..<i); continue
            }
            // 7. \s+
            i = wsEnd; emit(start..<i); continue
        }

        // Unreachable (every scalar is a letter, number, whitespace or "other"), but never loop forever.
        i += 1
        emit(start..<i)
    }
}

/// GPT-2's reversible mapping of the 256 byte values to printable code points.
enum GPT2Bytes {
    /// The byte values in GPT-2's vocabulary order: the printable ones first, then the remapped ones.
    static let order: [UInt8] = {
        var bs: [UInt8] = Array(33...126) + Array(161...172) + Array(174...255)
        let present = Set(bs)
        for b in 0...255 where !present.contains(UInt8(b)) { bs.append(UInt8(b)) }
        return bs
    }()

    /// byte -> code point
    static let scalarOf: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        let printable = Set<UInt8>(Array(33...126) + Array(161...172) + Array(174...255))
        for b in 0...255 {
            if printable.contains(UInt8(b)) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// code point -> byte
    static let byteOf: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for b in 0...255 { d[scalarOf[b]] = UInt8(b) }
        return d
    }()

    static func string(for bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(scalarOf[Int(b)])!) }
        return String(s)
    }

    /// Decodes a byte-level token string; code points outside the mapping keep their own UTF-8 bytes.
    static func bytes(for piece: String) -> [UInt8] {
        var out: [UInt8] = []
        for u in piece.unicodeScalars {
            if let b = byteOf[u.value] { out.append(b) } else { appendUTF8(u.value, to: &out) }
        }
        return out
    }
}
