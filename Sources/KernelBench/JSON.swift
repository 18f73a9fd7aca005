/// A minimal JSON value for the benchmark lines: keys keep their order, numbers print plainly.
package enum JSONValue: Sendable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)

    var text: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? String(format3(v)) : "null"
        case .bool(let v): return v ? "true" : "false"
        case .string(let s):
            var out = "\""
            for ch in s.unicodeScalars {
                switch ch {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default:
                    if ch.value < 0x20 { out += "\\u" + String(ch.value, radix: 16).leftPadded(to: 4) } else { out.unicodeScalars.append(ch) }
                }
            }
            return out + "\""
        }
    }
}

/// One JSON object on one line, keys in the given order.
package func jsonLine(_ fields: [(String, JSONValue)]) -> String {
    "{" + fields.map { "\(JSONValue.string($0.0).text): \($0.1.text)" }.joined(separator: ", ") + "}"
}

/// Rounds to 4 significant decimals after the point for readable output (JSON numbers stay plain).
func format3(_ v: Double) -> String {
    let r = (v * 10_000).rounded() / 10_000
    if r == r.rounded(), abs(r) < 1e15 { return String(Int(r)) }
    return String(r)
}

extension String {
    func leftPadded(to n: Int, with c: Character = "0") -> String {
        count >= n ? self : String(repeating: c, count: n - count) + self
    }
    func padded(to n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

extension BenchResult {
    /// The number stored under `key` in `extra`, if any.
    package func extraNumber(_ key: String) -> Double? {
        switch extra.first(where: { $0.0 == key })?.1 {
        case .double(let v)?: return v
        case .int(let v)?: return Double(v)
        default: return nil
        }
    }

    package var json: String {
        jsonLine([("name", .string(name)), ("kind", .string(kind))] + extra + [
            ("threads", .int(threads)), ("gflops", .double(gflops)), ("pctPeak", .double(pctPeak)),
            ("medianMs", .double(medianMs)), ("bestMs", .double(bestMs)), ("gbPerSecond", .double(gbPerSecond)),
            ("validationError", .double(validationError)),
        ])
    }
}
