import Foundation
import MLA
import Testing

@Suite struct ConfigTests {
    static let legacy = """
        {"hidden_size": 7168, "num_attention_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
         "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "rms_norm_eps": 1e-06,
         "rope_theta": 10000, "max_position_embeddings": 163840, "num_hidden_layers": 61,
         "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                          "original_max_position_embeddings": 4096, "type": "yarn"},
         "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]},
         "attention_bias": false, "vocab_size": 129280, "n_routed_experts": 256}
        """

    @Test func releasedDeepSeekV3FormDecodesWithYarnAndFp8Blocks() throws {
        let c = try MLAConfig.decode(json: Data(Self.legacy.utf8))
        #expect(c.hiddenSize == 7168 && c.numAttentionHeads == 128 && c.qLoraRank == 1536)
        #expect(c.ropeScaling?.isYarn == true && c.ropeScaling?.factor == 40 && c.ropeScaling?.originalMaxPositionEmbeddings == 4096)
        #expect(c.ropeInterleave, "HF's default for DeepSeek-V3 is interleaved")
        #expect(c.weightBlockSize == [128, 128])
        #expect(!c.useGatedAttn && c.gatedAttnAct == "sigmoid" && !c.useBias, "gate keys default off")
        #expect(c.numHiddenLayers == 61)
    }

    @Test func transformers5RopeParametersFormDecodesWithItsOwnTheta() throws {
        let json = """
            {"hidden_size": 64, "num_attention_heads": 8, "q_lora_rank": null, "kv_lora_rank": 24,
             "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
             "rope_parameters": {"rope_type": "yarn", "rope_theta": 50000, "factor": 8, "original_max_position_embeddings": 32,
                                 "mscale": 0.707, "mscale_all_dim": 1.0},
             "use_gated_attn": true, "gated_attn_act": "scaled_softsign", "use_bias": true}
            """
        let c = try MLAConfig.decode(json: Data(json.utf8))
        #expect(c.qLoraRank == nil && c.ropeTheta == 50000 && c.ropeScaling?.factor == 8 && c.ropeScaling?.mscale == 0.707)
        let act = try c.gateActivation()
        #expect(c.useGatedAttn && act == .scaledSoftsign && c.useBias && c.oProjBias)
    }

    @Test func defaultRopeTypeMeansNoScaling() throws {
        let json = #"{"hidden_size": 8, "num_attention_heads": 2, "kv_lora_rank": 4, "qk_nope_head_dim": 2, "qk_rope_head_dim": 2, "v_head_dim": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 500}}"#
        let c = try MLAConfig.decode(json: Data(json.utf8))
        #expect(c.ropeScaling == nil && c.ropeTheta == 500)
    }

    @Test func missingKeyAndWrongTypeAndBadJSONSayWhichKey() {
        #expect(throws: ConfigError.missingKey("kv_lora_rank")) {
            try MLAConfig.decode(json: Data(#"{"hidden_size": 8, "num_attention_heads": 2}"#.utf8))
        }
        do {
            _ = try MLAConfig.decode(json: Data(#"{"hidden_size": "big", "num_attention_heads": 2}"#.utf8))
            Issue.record("expected a throw")
        } catch { #expect("\(error)".contains("hidden_size")) }
        #expect(throws: ConfigError.self) { try MLAConfig.decode(json: Data("{not json".utf8)) }
    }

    @Test func validationNamesTheProblemAndTheFix() throws {
        var c = Presets.tiny
        #expect(throws: ConfigError.headsNotDivisible(heads: 8, tp: 3)) { try c.validate(tp: 3) }
        #expect(ConfigError.headsNotDivisible(heads: 8, tp: 3).description.contains("1, 2, 4, 8"))
        c.gatedAttnAct = "relu"
        #expect(throws: ConfigError.unknownActivation("relu")) { try c.validate() }
        #expect(ConfigError.unknownActivation("relu").description.contains("sigmoid, scaled_softsign"))
        c = Presets.tiny
        c.kvLoraRank = 0
        #expect(throws: ConfigError.nonPositive(key: "kv_lora_rank", value: 0)) { try c.validate() }
        c = Presets.tiny
        c.qLoraRank = -5
        #expect(throws: ConfigError.nonPositive(key: "q_lora_rank", value: -5)) { try c.validate() }
        c = Presets.tiny
        c.qkRopeHeadDim = 7
        #expect(throws: ConfigError.oddRopeDim(7)) { try c.validate() }
        #expect(throws: ConfigError.unknownPreset("huge")) { try Presets.config("huge") }
    }

    @Test func presetsValidateAtEveryTpTheirHeadsAllow() throws {
        for name in Presets.names {
            let c = try Presets.config(name)
            for tp in [1, 2, 4, 8] where c.numAttentionHeads % tp == 0 { try c.validate(tp: tp) }
        }
        #expect(Presets.deepseekV2Lite.qLoraRank == nil)
    }

    @Test func configRoundTripsThroughJSON() throws {
        for name in Presets.names {
            let c = try Presets.config(name)
            #expect(try MLAConfig.decode(json: JSONEncoder().encode(c)) == c)
        }
    }
}

@Suite struct RopeTests {
    @Test func plainInverseFrequenciesFollowTheta() {
        var c = Presets.tiny   // rope 16, theta 1e4
        c.ropeScaling = nil
        let r = Rope(config: c)
        #expect(r.invFreq.count == 8 && r.invFreq[0] == 1 && r.attentionFactor == 1)
        #expect(abs(r.invFreq[1] - 1 / powf(10_000, 2.0 / 16)) < 1e-7)
    }

    @Test func yarnAttentionFactorAndSoftmaxScaleFollowHF() {
        var c = Presets.deepseekV3
        let m = 0.1 * log(40.0) + 1
        #expect(Rope(config: c).attentionFactor == 1, "mscale == mscale_all_dim cancels")
        #expect(abs(Double(Rope.softmaxScale(config: c)) - m * m / 192.0.squareRoot()) < 1e-7)
        c.ropeScaling?.mscale = 0.707
        let expected = (0.1 * 0.707 * log(40.0) + 1) / m
        #expect(abs(Double(Rope(config: c).attentionFactor) - expected) < 1e-6)
        // YaRN keeps the fastest frequencies and divides the slowest by the factor.
        let plain = Rope(config: { var p = c; p.ropeScaling = nil; return p }())
        let yarn = Rope(config: c)
        #expect(yarn.invFreq[0] == plain.invFreq[0])
        #expect(abs(yarn.invFreq[31] - plain.invFreq[31] / 40) < 1e-12)
    }

    @Test func interleavedAndNeoXRotateTheirOwnPairs() {
        var c = Presets.tiny
        c.qkRopeHeadDim = 4
        c.ropeTheta = 1
        c.ropeInterleave = true
        let angle: Float = 0.5
        let cosT: [Float] = [cosf(angle), 1], sinT: [Float] = [sinf(angle), 0]
        var x: [Float] = [1, 2, 3, 4]
        Rope(config: c).apply(&x, cos: cosT, sin: sinT)
        #expect(abs(x[0] - (cosf(angle) - 2 * sinf(angle))) < 1e-6 && abs(x[1] - (2 * cosf(angle) + sinf(angle))) < 1e-6)
        #expect(x[2] == 3 && x[3] == 4)
        c.ropeInterleave = false
        var y: [Float] = [1, 2, 3, 4]
        Rope(config: c).apply(&y, cos: cosT, sin: sinT)
        #expect(abs(y[0] - (cosf(angle) - 3 * sinf(angle))) < 1e-6 && abs(y[2] - (3 * cosf(angle) + sinf(angle))) < 1e-6)
        #expect(y[1] == 2 && y[3] == 4)
    }
}
