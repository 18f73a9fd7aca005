import XCTest
@testable import Pretraining
