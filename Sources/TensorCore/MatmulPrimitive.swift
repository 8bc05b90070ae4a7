import CDNNL

/// Everything a oneDNN matmul primitive is specialised for: one primitive per distinct key.
public struct MatmulKey: Hashable, Sendable, CustomStringConvertible {
    public var m, n, k: Int
    public var transA, transB: Bool
    public var lda, ldb, ldc: Int
    public var a, b, c: Precision
    public var alpha, beta: Float
    /// Let oneDNN pick the weight's layout (`format_tag any`): the weight must then be reordered
    /// into `MatmulPrimitive.weightLayoutBytes` before use. Off for every product `Gemm` runs.
    public var blockedWeights: Bool = false

    public init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, lda: Int, ldb: Int, ldc: Int,
                a: Precision, b: Precision, c: Precision, alpha: Float = 1, beta: Float = 0, blockedWeights: Bool = false) {
        self.m = m; self.n = n; self.k = k
        self.transA = transA; self.transB = transB
        self.lda = lda; self.ldb = ldb; self.ldc = ldc
        self.a = a; self.b = b; self.c = c
        self.alpha = alpha; self.beta = beta
        self.blockedWeights = blockedWeights
    }

    public var description: String {
        "[\(m), \(k)]·[\(k), \(n)] \(a)×\(b)→\(c)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "") ld \(lda)/\(ldb)/\(ldc)"
    }
}

/// One oneDNN matmul primitive, C[m, n] = alpha · op(A) · op(B) + beta · C, on row-major storage
/// with leading dimensions (strides), so that views need no copy. Created once per `MatmulKey`
/// (creation costs far more than a small execution); its memory objects are created without a
/// buffer and pointed at the caller's data before each execution.
///
/// Not thread-safe: `GemmContext` runs at most one execution at a time.
final class MatmulPrimitive {
    let key: MatmulKey
    /// oneDNN's name for the implementation it chose, e.g. "brg:avx512_core_bf16" or "gemm:jit".
    let implementation: String
    /// Bytes of the weight in the layout the primitive reads (its own choice when `blockedWeights`).
    let weightLayoutBytes: Int
    /// Whether that layout is the plain row-major one the caller's weight is in.
    let weightsArePlain: Bool
    private let descriptor: dnnl_primitive_desc_t
    private let primitive: dnnl_primitive_t
    private let memories: [dnnl_memory_t]   // A, B, C

    static func dataType(_ p: Precision) -> dnnl_data_type_t { p == .f32 ? dnnl_f32 : dnnl_bf16 }

    /// A `rows × cols` descriptor with the given strides (`[ld, 1]` row-major, `[1, ld]` transposed).
    static func descriptor(rows: Int, cols: Int, transposed: Bool, ld: Int, _ p: Precision) throws(DNNLError) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let dims: [dnnl_dim_t] = [dnnl_dim_t(rows), dnnl_dim_t(cols)]
        let strides: [dnnl_dim_t] = transposed ? [1, dnnl_dim_t(ld)] : [dnnl_dim_t(ld), 1]
        try OneDNN.check("dnnl_memory_desc_init_by_strides", dnnl_memory_desc_init_by_strides(&md, 2, dims, dataType(p), strides))
        return md
    }

    init(_ key: MatmulKey, engine: dnnl_engine_t) throws(DNNLError) {
        self.key = key
        let aMD = try Self.descriptor(rows: key.m, cols: key.k, transposed: key.transA, ld: key.lda, key.a)
        var bMD = try Self.descriptor(rows: key.k, cols: key.n, transposed: key.transB, ld: key.ldb, key.b)
        if key.blockedWeights {
            let dims: [dnnl_dim_t] = [dnnl_dim_t(key.k), dnnl_dim_t(key.n)]
            try OneDNN.check("dnnl_memory_desc_init_by_tag", dnnl_memory_desc_init_by_tag(&bMD, 2, dims, Self.dataType(key.b), dnnl_format_tag_any))
        }
        let cMD = try Self.descriptor(rows: key.m, cols: key.n, transposed: false, ld: key.ldc, key.c)
        var desc = dnnl_matmul_desc_t()
        var mds = [aMD, bMD, cMD]
        try OneDNN.check("dnnl_matmul_desc_init", dnnl_matmul_desc_init(&desc, &mds[0], &mds[1], nil, &mds[2]))

        var attr: dnnl_primitive_attr_t?
        try OneDNN.check("dnnl_primitive_attr_create", dnnl_primitive_attr_create(&attr))
        defer { dnnl_primitive_attr_destroy(attr) }
        if key.alpha != 1 {
            var alpha = key.alpha
            try OneDNN.check("dnnl_primitive_attr_set_output_scales", dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha))
        }
        if key.beta != 0 {
            var ops: dnnl_post_ops_t?
            try OneDNN.check("dnnl_post_ops_create", dnnl_post_ops_create(&ops))
            defer { dnnl_post_ops_destroy(ops) }
            try OneDNN.check("dnnl_post_ops_append_sum", dnnl_post_ops_append_sum(ops, key.beta))
            try OneDNN.check("dnnl_primitive_attr_set_post_ops", dnnl_primitive_attr_set_post_ops(attr, ops))
        }

        var pd: dnnl_primitive_desc_t?
        try OneDNN.check("dnnl_primitive_desc_create", dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil))
        guard let pd else { throw DNNLError(call: "dnnl_primitive_desc_create", status: -1, message: "no descriptor") }
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        implementation = name.map { String(cString: $0) } ?? "unknown"
        let weightsMD = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)
        weightLayoutBytes = weightsMD.map { Int(dnnl_memory_desc_get_size($0)) } ?? 0
        var plainB = try Self.descriptor(rows: key.k, cols: key.n, transposed: key.transB, ld: key.ldb, key.b)
        weightsArePlain = weightsMD.map { dnnl_memory_desc_equal($0, &plainB) != 0 } ?? false

        var made: [dnnl_memory_t] = []
        do {
            var prim: dnnl_primitive_t?
            try OneDNN.check("dnnl_primitive_create", dnnl_primitive_create(&prim, pd))
            primitive = prim!
            for md in [aMD, weightsMD?.pointee ?? bMD, cMD] {
                var mem: dnnl_memory_t?
                var d = md
                try OneDNN.check("dnnl_memory_create", dnnl_memory_create(&mem, &d, engine, mlatp_dnnl_memory_none()))
                made.append(mem!)
            }
        } catch {
            for mem in made { dnnl_memory_destroy(mem) }
            dnnl_primitive_desc_destroy(pd)
            throw error
        }
        memories = made
        descriptor = pd
    }

    /// Copies a weight kept in the key's plain order (`ldb`, `transB`) into the layout this
    /// primitive reads (for `blockedWeights` keys, once at load): `into` must hold `weightLayoutBytes`.
    func reorderWeights(from plain: UnsafeRawPointer, into: UnsafeMutableRawPointer, engine: dnnl_engine_t,
                        stream: dnnl_stream_t) throws(DNNLError) {
        var source = try Self.descriptor(rows: key.k, cols: key.n, transposed: key.transB, ld: key.ldb, key.b)
        guard var target = dnnl_primitive_desc_query_md(descriptor, dnnl_query_weights_md, 0)?.pointee else {
            throw DNNLError(call: "dnnl_primitive_desc_query_md", status: -1, message: "no weights descriptor")
        }
        var rpd: dnnl_primitive_desc_t?
        try OneDNN.check("dnnl_reorder_primitive_desc_create",
                         dnnl_reorder_primitive_desc_create(&rpd, &source, engine, &target, engine, nil))
        defer { dnnl_primitive_desc_destroy(rpd) }
        var reorder: dnnl_primitive_t?
        try OneDNN.check("dnnl_primitive_create", dnnl_primitive_create(&reorder, rpd))
        defer { dnnl_primitive_destroy(reorder) }
        var from: dnnl_memory_t?, to: dnnl_memory_t?
        try OneDNN.check("dnnl_memory_create", dnnl_memory_create(&from, &source, engine, UnsafeMutableRawPointer(mutating: plain)))
        defer { dnnl_memory_destroy(from) }
        try OneDNN.check("dnnl_memory_create", dnnl_memory_create(&to, &target, engine, into))
        defer { dnnl_memory_destroy(to) }
        let args = [dnnl_exec_arg_t(arg: mlatp_dnnl_arg_from(), memory: from), dnnl_exec_arg_t(arg: mlatp_dnnl_arg_to(), memory: to)]
        try OneDNN.check("dnnl_primitive_execute", dnnl_primitive_execute(reorder, stream, Int32(args.count), args))
        try OneDNN.check("dnnl_stream_wait", dnnl_stream_wait(stream))
    }

    deinit {
        for mem in memories { dnnl_memory_destroy(mem) }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }

    /// Runs the product on `a`, `b` (in the primitive's weight layout) and `c`, and waits for it.
    func execute(a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutableRawPointer, stream: dnnl_stream_t) throws(DNNLError) {
        let pointers = [UnsafeMutableRawPointer(mutating: a), UnsafeMutableRawPointer(mutating: b), c]
        for (mem, p) in zip(memories, pointers) {
            try OneDNN.check("dnnl_memory_set_data_handle", dnnl_memory_set_data_handle(mem, p))
        }
        let args = [dnnl_exec_arg_t(arg: mlatp_dnnl_arg_src(), memory: memories[0]),
                    dnnl_exec_arg_t(arg: mlatp_dnnl_arg_weights(), memory: memories[1]),
                    dnnl_exec_arg_t(arg: mlatp_dnnl_arg_dst(), memory: memories[2])]
        try OneDNN.check("dnnl_primitive_execute", dnnl_primitive_execute(primitive, stream, Int32(args.count), args))
        try OneDNN.check("dnnl_stream_wait", dnnl_stream_wait(stream))
    }
}
