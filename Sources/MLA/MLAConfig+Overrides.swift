import Foundation

extension MLAConfig {
    /// The config with `overrides` applied through config.json's own keys, in order: each value
    /// is JSON (`false`, `null`, `{"type": "yarn", …}`), or a string when it does not parse as
    /// JSON. Setting `rope_scaling` or `rope_parameters` replaces whichever form was there.
    public func applying(overrides: [(key: String, value: String)]) throws -> MLAConfig {
        guard !overrides.isEmpty else { return self }
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any] ?? [:]
        for (key, raw) in overrides {
            let value = (try? JSONSerialization.jsonObject(with: Data(raw.utf8), options: [.fragmentsAllowed])) ?? raw
            if key == "rope_scaling" || key == "rope_parameters" { dict.removeValue(forKey: "rope_scaling") }
            dict[key] = value
        }
        return try MLAConfig.decode(json: try JSONSerialization.data(withJSONObject: dict), file: "--set overrides")
    }
}
