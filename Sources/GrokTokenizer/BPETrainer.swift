// A small, deterministic BPE trainer (most frequent adjacent pair first) used to build synthetic vocabularies.
// Pair counts are kept incrementally (only the words containing the merged pair are revisited) and the best
// pair comes from a max-heap with lazy invalidation, so thousands of merges take well under a second.
// Ties between equally frequent pairs go to the smaller (left, right) symbol ids, so the result never
// depends on hashing order.

struct BPETrainer {
    private(set) var words: [[Int32]]
    private let counts: [Int]
    /// blocked[id] == true: the symbol never takes part in a merge (e.g. characters left out of the vocabulary).
    private let blocked: [Bool]
    private var pairCounts: [UInt64: Int] = [:]
    private var pairWords: [UInt64: [Int32]] = [:]
    private var heap: [(count: Int, key: UInt64)] = []

    init(words: [[Int32]], counts: [Int], blocked: [Bool]) {
        self.words = words
        self.counts = counts
        self.blocked = blocked
        for (w, word) in words.enumerated() where word.count > 1 {
            for k in 1..<word.count where mergeable(word[k - 1], word[k]) {
                let key = pairKey(word[k - 1], word[k])
                pairCounts[key, default: 0] += counts[w]
                pairWords[key, default: []].append(Int32(w))
            }
        }
        for key in pairCounts.keys.sorted() { push(pairCounts[key]!, key) }
    }

    @inline(__always)
    private func mergeable(_ a: Int32, _ b: Int32) -> Bool {
        !(Int(a) < blocked.count && blocked[Int(a)]) && !(Int(b) < blocked.count && blocked[Int(b)])
    }

    /// Finds the most frequent pair, asks `result(left, right)` which symbol replaces it, rewrites every word,
    /// and returns (left, right, merged, frequency). Nil when no pair is left.
    mutating func step(_ result: (Int32, Int32) -> Int32) -> (left: Int32, right: Int32, merged: Int32, count: Int)? {
        while let top = pop() {
            guard let current = pairCounts[top.key], current == top.count, current > 0 else { continue }
            let l = Int32(bitPattern: UInt32(top.key >> 32)), r = Int32(bitPattern: UInt32(top.key & 0xFFFF_FFFF))
            let merged = result(l, r)
            let affected = Array(Set(pairWords[top.key] ?? [])).sorted()
            pairWords[top.key] = nil
            var changed = Set<UInt64>()
            for w32 in affected {
                let w = Int(w32)
                let old = words[w]
                var new: [Int32] = []
                new.reserveCapacity(old.count)
                var k = 0
                var found = false
                while k < old.count {
                    if k + 1 < old.count && old[k] == l && old[k + 1] == r {
                        new.append(merged)
                        k += 2
                        found = true
                    } else {
                        new.append(old[k])
                        k += 1
                    }
                }
                if !found { continue }
                let c = counts[w]
                for k in 1..<old.count where mergeable(old[k - 1], old[k]) {
                    let key = pairKey(old[k - 1], old[k])
                    pairCounts[key, default: 0] -= c
                    changed.insert(key)
                }
                if new.count > 1 {
                    for k in 1..<new.count where mergeable(new[k - 1], new[k]) {
                        let key = pairKey(new[k - 1], new[k])
                        pairCounts[key, default: 0] += c
                        pairWords[key, default: []].append(w32)
                        changed.insert(key)
                    }
                }
                words[w] = new
            }
            for key in changed.sorted() {
                let c = pairCounts[key] ?? 0
                if c <= 0 {
                    pairCounts[key] = nil
                    pairWords[key] = nil
                } else {
                    push(c, key)
                }
            }
            return (l, r, merged, current)
        }
        return nil
    }

    @inline(__always)
    private static func better(_ a: (count: Int, key: UInt64), _ b: (count: Int, key: UInt64)) -> Bool {
        a.count > b.count || (a.count == b.count && a.key < b.key)
    }

    private mutating func push(_ count: Int, _ key: UInt64) {
        heap.append((count, key))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            if !BPETrainer.better(heap[i], heap[p]) { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    private mutating func pop() -> (count: Int, key: UInt64)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= heap.count { break }
            var best = l
            if l + 1 < heap.count && BPETrainer.better(heap[l + 1], heap[l]) { best = l + 1 }
            if !BPETrainer.better(heap[best], heap[i]) { break }
            heap.swapAt(i, best)
            i = best
        }
        return top
    }
}
