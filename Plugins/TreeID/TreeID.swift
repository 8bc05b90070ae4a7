import Foundation
import PackagePlugin

/// Writes `TreeID.swift` (the tree id of the sources this build compiles, from `scripts/tree-id`)
/// into the target that uses it. The command reruns whenever any file under Sources/ or
/// Package.swift changes, so the binary always carries the id of the tree it was built from.
@main
struct TreeID: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        var inputs = [root.appending(path: "Package.swift"), root.appending(path: "scripts/tree-id")]
        if let files = FileManager.default.enumerator(at: root.appending(path: "Sources"), includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let url as URL in files where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                inputs.append(url)
            }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "TreeID.swift")
        let script = #"printf 'extension BuildInfo {\n    /// The tree id of the sources this binary was built from (`scripts/tree-id`).\n    public static let treeID = "%s"\n}\n' "$("$1/scripts/tree-id" "$1")" > "$2""#
        return [.buildCommand(displayName: "Tree id of \(root.lastPathComponent)", executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", script, "sh", root.path, output.path], inputFiles: inputs, outputFiles: [output])]
    }
}
