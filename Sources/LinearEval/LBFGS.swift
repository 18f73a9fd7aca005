// Limited-memory BFGS with a backtracking (Armijo) line search, in Double, for the small parameter vectors of
// a linear probe (d x classes + classes values; 7,850 for 784 x 10).
//
// Why L-BFGS: the probe objective (mean softmax cross-entropy + L2) is smooth and convex, and each full-batch
// evaluation costs two GEMMs over the whole train set. L-BFGS reaches a tight optimum in tens of evaluations
// without a step size to tune (it estimates the curvature itself, so the step 1 is nearly always accepted);
// full-batch Adam/Nesterov needs a hand-picked rate per feature scale and several hundred passes for the same
// loss. On a convex objective every accepted step has s.y > 0, so the Armijo condition alone keeps the
// inverse-Hessian estimate positive definite (pairs with tiny curvature are skipped anyway).

/// A function to minimise. `value(at:)` is always called before `gradient(at:)` for the same point, so an
/// implementation can keep what it computed for the value and reuse it for the gradient.
protocol LBFGSObjective: AnyObject {
    var parameterCount: Int { get }
    func value(at x: [Double]) -> Double
    func gradient(at x: [Double]) -> [Double]
}

struct LBFGSSettings {
    var maxIterations: Int
    /// First trial step of every line search (scaled by 1/|g| on the first iteration, when there is no
    /// curvature estimate yet).
    var initialStep: Double = 1
    var history: Int = 10
    /// Stop when |g|_inf <= gradientTolerance.
    var gradientTolerance: Double = 1e-6
    /// Stop when a step lowers f by no more than this relative amount (scipy's L-BFGS-B default, 1e7 x the
    /// Double epsilon): the Float GEMMs make f noisy at about 1e-7 relative, so gains below that are noise.
    var valueTolerance: Double = 2.2e-9
    /// Armijo constant.
    var sufficientDecrease: Double = 1e-4
    /// Halvings of the step before giving up: many on the first iteration (no curvature estimate yet), few
    /// later, where the quasi-Newton step 1 is nearly always accepted and a failure means f is at its noise
    /// floor (each trial costs a pass over the data).
    var maxBacktracksFirst: Int = 30
    var maxBacktracks: Int = 10
}

struct LBFGSOutcome {
    var x: [Double]
    var value: Double
    /// Accepted steps.
    var iterations: Int
    /// Values after each accepted step, starting with the value at the initial point.
    var history: [Double]
    /// Calls of `value(at:)`.
    var evaluations: Int
}

@inline(__always)
func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

/// Minimises `f` from `x0`. Deterministic: every reduction is a serial loop in a fixed order.
func minimizeLBFGS(_ f: LBFGSObjective, from x0: [Double], settings: LBFGSSettings) -> LBFGSOutcome {
    var x = x0
    var fx = f.value(at: x)
    var evaluations = 1
    var g = f.gradient(at: x)
    var history = [fx]
    var sList: [[Double]] = [], yList: [[Double]] = [], rhoList: [Double] = []
    var iterations = 0
    let p = x.count

    while iterations < settings.maxIterations {
        let gInf = g.reduce(0) { max($0, abs($1)) }
        if !(gInf > settings.gradientTolerance) { break }

        // Two-loop recursion: direction = -H g.
        var q = g
        var alphas = [Double](repeating: 0, count: sList.count)
        for i in stride(from: sList.count - 1, through: 0, by: -1) {
            let a = rhoList[i] * dot(sList[i], q)
            alphas[i] = a
            for j in 0..<p { q[j] -= a * yList[i][j] }
        }
        if let s = sList.last, let y = yList.last {
            let gamma = dot(s, y) / dot(y, y)
            for j in 0..<p { q[j] *= gamma }
        }
        for i in 0..<sList.count {
            let b = rhoList[i] * dot(yList[i], q)
            for j in 0..<p { q[j] += sList[i][j] * (alphas[i] - b) }
        }
        var direction = q.map { -$0 }
        var slope = dot(g, direction)
        if !(slope < 0) {
            // Not a descent direction (round-off in the memory): restart from steepest descent.
            sList.removeAll(); yList.removeAll(); rhoList.removeAll()
            direction = g.map { -$0 }
            slope = -dot(g, g)
        }

        var step = settings.initialStep
        if sList.isEmpty { step *= min(1, 1 / dot(g, g).squareRoot()) }
        var accepted = false
        var xNew = x, fNew = fx
        for _ in 0...(sList.isEmpty ? settings.maxBacktracksFirst : settings.maxBacktracks) {
            for j in 0..<p { xNew[j] = x[j] + step * direction[j] }
            fNew = f.value(at: xNew)
            evaluations += 1
            if fNew.isFinite && fNew <= fx + settings.sufficientDecrease * step * slope {
                accepted = true
                break
            }
            step *= 0.5
        }
        if !accepted { break }  // no decrease possible at this precision: converged as far as it goes

        let gNew = f.gradient(at: xNew)
        var s = [Double](repeating: 0, count: p), y = s
        for j in 0..<p {
            s[j] = xNew[j] - x[j]
            y[j] = gNew[j] - g[j]
        }
        let sy = dot(s, y)
        if sy > 1e-12 * dot(y, y) && sy > 0 {
            if sList.count == settings.history {
                sList.removeFirst(); yList.removeFirst(); rhoList.removeFirst()
            }
            sList.append(s); yList.append(y); rhoList.append(1 / sy)
        }
        let decrease = fx - fNew
        let small = decrease <= settings.valueTolerance * max(abs(fx), abs(fNew), 1)
        x = xNew
        fx = fNew
        g = gNew
        iterations += 1
        history.append(fx)
        if small { break }
    }
    return LBFGSOutcome(x: x, value: fx, iterations: iterations, history: history, evaluations: evaluations)
}
