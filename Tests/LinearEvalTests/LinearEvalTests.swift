import XCTest
@testable import LinearEval
