/// A failure finding a checkpoint or a tensor in it.
public enum CheckpointIndexError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path is neither a `.safetensors` file, an index JSON, nor a directory holding one.
    case checkpointNotFound(path: String)
    /// `model.safetensors.index.json` cannot be read or is malformed.
    case invalidIndex(path: String, reason: String)
    /// No file of the checkpoint holds the tensor.
    case tensorNotFound(tensor: String, filesSearched: [String])

    public var description: String {
        switch self {
        case let .checkpointNotFound(path):
            return "\(path): no checkpoint found — pass a .safetensors file, a model.safetensors.index.json, "
                + "or a directory containing model.safetensors or model.safetensors.index.json"
        case let .invalidIndex(path, reason):
            return "\(path): invalid checkpoint index: \(reason) — it must be "
                + "{\"metadata\": {...}, \"weight_map\": {tensor name: shard file name}}; re-download the checkpoint"
        case let .tensorNotFound(tensor, files):
            return "no tensor named '\(tensor)' in the checkpoint; searched \(files.joined(separator: ", ")) — "
                + "check the tensor name and that the checkpoint is the expected model"
        }
    }
}
