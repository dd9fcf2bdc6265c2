import Foundation

/// A problem with a checkpoint file: which file, which field, what was expected and what was found.
///
/// Every structural failure of the readers and writers in this module is one of these, so a user sees
/// one line that points at the byte range or key to look at, for example
/// `model.gguf: tensor "blk.0.attn_q.weight" type: expected one of F32 (0), …, found 12 (Q4_K)`.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// The path of the file, as given to the reader or writer.
    public let file: String
    /// The part of the file at fault: `magic`, `version`, `metadata "general.alignment"`,
    /// `tensor "token_embd.weight" offset`, …
    public let field: String
    /// What a valid file has there.
    public let expected: String
    /// What this file has there, when there is something to show.
    public let found: String?

    public init(file: String, field: String, expected: String, found: String? = nil) {
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
    }

    /// One line: `<file>: <field>: expected <expected>[, found <found>]` (line breaks are escaped).
    public var description: String {
        var text = "\(file): \(field): expected \(expected)"
        if let found { text += ", found \(found)" }
        return text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    }

    public var errorDescription: String? { description }
}

/// `"name"` with quotes and escapes, for tensor names and keys inside messages.
func quoted(_ text: String) -> String {
    text.debugDescription
}
