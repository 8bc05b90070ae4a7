/// What this binary was built from. `treeID` is generated at build time by the TreeID plugin
/// from `scripts/tree-id`: a hash of Package.swift and every file under Sources/.
public enum BuildInfo {}
