// C++ consumer: uses both the stable C API and the cxx-generated C++ API.
#include <cstring>
#include <iostream>
#include <string>

#include "brainsam.hpp"

int main() {
  // The C++ API and the C API report the same library.
  const std::string cxx_version(brainsam::version());
  if (cxx_version != brainsam_version() || cxx_version != BRAINSAM_VERSION) {
    std::cerr << "version mismatch: " << cxx_version << " vs " << brainsam_version() << "\n";
    return 1;
  }
  if (brainsam::abi_version() != BRAINSAM_ABI_VERSION) {
    std::cerr << "ABI version mismatch\n";
    return 1;
  }
  const brainsam::RuntimeInfo info = brainsam::runtime_info();
  const std::string torch(info.libtorch_version);
  if (torch.rfind("2.11.0", 0) != 0) {
    std::cerr << "unexpected libtorch version " << torch << "\n";
    return 1;
  }
  std::cout << "brainsam " << cxx_version << " via C++, libtorch " << torch << ", cuda "
            << (info.cuda_available ? "yes" : "no") << "\n";
  std::cout << "c++ consumer: ok\n";
  return 0;
}
