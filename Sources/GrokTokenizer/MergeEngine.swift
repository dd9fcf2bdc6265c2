// Shared machinery: the BPE merge loop (linked list of symbols + binary heap of candidate pairs) and a
// leftmost-longest matcher for whole pieces (user-defined and special tokens).

/// What merging two adjacent symbols produces, and how urgent it is (higher priority merges first).
struct PairEntry: Sendable {
    var priority: Double
    var result: Int32
}

struct MergeCandidate {
    var priority: Double
    var left: Int32
    var right: Int32
    var leftSymbol: Int32
    var rightSymbol: Int32
    var result: Int32
}

/// Reusable buffers for one run of the merge loop. Semantics follow llama.cpp's llm_tokenizer_spm /
/// llm_tokenizer_bpe sessions: repeatedly merge the adjacent pair with the highest priority, ties going to the
/// leftmost pair; stale candidates (a side already merged into something else) are skipped when popped.
struct MergeWorkspace {
    var symbols: [Int32] = []
    var next: [Int32] = []
    var prev: [Int32] = []
    private var dead: [Bool] = []
    private var heap: [MergeCandidate] = []

    /// Runs the merge loop over `initial` symbol ids (negative = can never merge). Afterwards the surviving
    /// symbols are reachable from index 0 through `next` (-1 ends the list); `symbols[i]` is the merged id of the
    /// survivor starting at original position i.
    mutating func run(_ initial: [Int32], table: [UInt64: PairEntry]) {
        let n = initial.count
        symbols = initial
        next = (0..<n).map { Int32($0 + 1) }
        if n > 0 { next[n - 1] = -1 }
        prev = (0..<n).map { Int32($0 - 1) }
        dead = [Bool](repeating: false, count: n)
        heap.removeAll(keepingCapacity: true)
        if n < 2 || table.isEmpty { return }
        for i in 0..<(n - 1) { consider(Int32(i), Int32(i + 1), table) }
        while let c = popBest() {
            let l = Int(c.left), r = Int(c.right)
            if dead[l] || dead[r] || next[l] != c.right || symbols[l] != c.leftSymbol || symbols[r] != c.rightSymbol {
                continue
            }
            symbols[l] = c.result
            dead[r] = true
            let after = next[r]
            next[l] = after
            if after >= 0 { prev[Int(after)] = c.left }
            consider(prev[l], c.left, table)
            consider(c.left, after, table)
        }
    }

    @inline(__always)
    private mutating func consider(_ l: Int32, _ r: Int32, _ table: [UInt64: PairEntry]) {
        if l < 0 || r < 0 { return }
        let a = symbols[Int(l)], b = symbols[Int(r)]
        if a < 0 || b < 0 { return }
        guard let e = table[pairKey(a, b)] else { return }
        push(MergeCandidate(priority: e.priority, left: l, right: r, leftSymbol: a, rightSymbol: b, result: e.result))
    }

    @inline(__always)
    private static func better(_ x: MergeCandidate, _ y: MergeCandidate) -> Bool {
        x.priority > y.priority || (x.priority == y.priority && x.left < y.left)
    }

    private mutating func push(_ c: MergeCandidate) {
        heap.append(c)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            if !MergeWorkspace.better(heap[i], heap[p]) { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    private mutating func popBest() -> MergeCandidate? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var best = l
            let r = l + 1
            if r < n && MergeWorkspace.better(heap[r], heap[l]) { best = r }
            if !MergeWorkspace.better(heap[best], heap[i]) { break }
            heap.swapAt(i, best)
            i = best
        }
        return top
    }
}

/// A trie over Unicode scalar values finding, at a position, the longest piece that starts there.
struct PieceMatcher: Sendable {
    private var children: [[UInt32: Int32]] = [[:]]
    private var values: [Int32] = [-1]
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Adds a piece; when two ids have the same text the first one inserted wins.
    mutating func insert(_ scalars: [UInt32], id: Int32) {
        guard !scalars.isEmpty else { return }
        var node = 0
        for s in scalars {
            if let c = children[node][s] {
                node = Int(c)
            } else {
                children.append([:])
                values.append(-1)
                let c = Int32(children.count - 1)
                children[node][s] = c
                node = Int(c)
            }
        }
        if values[node] < 0 {
            values[node] = id
            count += 1
        }
    }

    /// The longest piece that matches `s[i..<end]` at its start, as (length in scalars, id).
    @inline(__always)
    func longestMatch(_ s: [UInt32], at i: Int, end: Int) -> (length: Int, id: Int32)? {
        guard var node = children[0][s[i]].map(Int.init) else { return nil }
        var best: (Int, Int32)? = values[node] >= 0 ? (1, values[node]) : nil
        var j = i + 1
        while j < end, let c = children[node][s[j]] {
            node = Int(c)
            j += 1
            if values[node] >= 0 { best = (j - i, values[node]) }
        }
        return best
    }
}

/// Piece of a text after matching whole pieces: either a run of ordinary text or a matched token.
enum Segment {
    case text(Range<Int>)
    case token(Int32)
}

/// Splits `s[range]` into text runs and matched pieces, scanning left to right and taking the longest piece
/// at each position (leftmost-longest, as SentencePiece's prefix matcher and Hugging Face's added-token
/// matcher do).
func splitOnPieces(_ s: [UInt32], _ range: Range<Int>, matcher: PieceMatcher, into out: inout [Segment]) {
    if matcher.isEmpty {
        if !range.isEmpty { out.append(.text(range)) }
        return
    }
    var runStart = range.lowerBound
    var i = range.lowerBound
    while i < range.upperBound {
        if let m = matcher.longestMatch(s, at: i, end: range.upperBound) {
            if runStart < i { out.append(.text(runStart..<i)) }
            out.append(.token(m.id))
            i += m.length
            runStart = i
        } else {
            i += 1
        }
    }
    if runStart < range.upperBound { out.append(.text(runStart..<range.upperBound)) }
}
