// C++ consumer: uses both the stable C API and the cxx-generated C++ API.
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "brainsam.hpp"

// Fine-tunes with the configuration at `config_path` to the end and saves the model
// (compiled here; run when the consumer gets a configuration argument).
static bool fine_tune(const std::string& config_path, const std::string& model_path) {
  brainsam::FineTuneOptions options;
  options.resume = false;
  rust::Box<brainsam::FineTune> run = brainsam::start_fine_tune(config_path, options);
  brainsam::FineTuneStatus status = run->progress();
  while (status.state == brainsam::FineTuneState::Running) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = run->progress();
  }
  if (run->wait() != brainsam::FineTuneState::Finished || !std::isfinite(status.loss)) {
    return false;
  }
  run->save(brainsam::FineTuneOutput::Model, model_path);
  std::cout << "fine-tuned " << status.iteration << " iterations\n";
  return true;
}

int main(int argc, char** argv) {
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
  // Device and precision names parse in the library, as on its command line.
  const brainsam::DeviceSpec device = brainsam::parse_device(" CUDA:1");
  if (device.device != brainsam::Device::Cuda || device.device_index != 1 ||
      brainsam::parse_precision("half") != brainsam::Precision::Fp16) {
    std::cerr << "device or precision names parsed wrongly\n";
    return 1;
  }
  try {
    brainsam::parse_device("tpu");
    std::cerr << "an unknown device name was accepted\n";
    return 1;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("cuda:N") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return 1;
    }
  }
  // Fine-tuning errors arrive as exceptions naming the problem.
  try {
    brainsam::start_fine_tune("/nonexistent/run.toml", brainsam::FineTuneOptions{false});
    std::cerr << "a missing configuration was accepted\n";
    return 1;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("/nonexistent/run.toml") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return 1;
    }
  }
  if (argc == 3 && !fine_tune(argv[1], argv[2])) {
    std::cerr << "fine-tuning did not finish\n";
    return 1;
  }
  std::cout << "c++ consumer: ok\n";
  return 0;
}
