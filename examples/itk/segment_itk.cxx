// Segments a T1 image read by ITK with BrainSAM and writes the label map with ITK.
// Usage: brainsam_itk INPUT OUTPUT CHECKPOINT [auto|cpu|cuda|cuda:N]
//
// ITK images are in LPS coordinates and store voxels i fastest, which is what
// brainsam::VolumeGeometry describes, so the buffer, spacing, origin and direction are
// handed over as they are; the label map gets the input's geometry back.
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include "brainsam.hpp"

using ImageType = itk::Image<float, 3>;
using LabelImageType = itk::Image<std::uint8_t, 3>;

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::cerr << "usage: " << argv[0] << " INPUT OUTPUT CHECKPOINT [auto|cpu|cuda|cuda:N]\n";
    return 2;
  }
  const std::string device = argc == 5 ? argv[4] : "auto";
  try {
    auto reader = itk::ImageFileReader<ImageType>::New();
    reader->SetFileName(argv[1]);
    reader->Update();
    ImageType::Pointer image = reader->GetOutput();
    const ImageType::RegionType region = image->GetBufferedRegion();

    brainsam::VolumeGeometry geometry;
    for (unsigned axis = 0; axis < 3; axis++) {
      geometry.dims[axis] = region.GetSize()[axis];
      geometry.spacing[axis] = image->GetSpacing()[axis];
      geometry.origin[axis] = image->GetOrigin()[axis];
      for (unsigned column = 0; column < 3; column++) {
        geometry.direction[axis * 3 + column] = image->GetDirection()(axis, column);
      }
    }
    geometry.coordinates = brainsam::Coordinates::Lps;

    brainsam::ModelOptions options{};  // {}: every field not set below takes its default
    options.checkpoint_path = argv[3];
    // The library parses device names (as its command line does; throws otherwise).
    const brainsam::DeviceSpec spec = brainsam::parse_device(device);
    options.device = spec.device;
    options.device_index = spec.device_index;
    rust::Box<brainsam::Model> model = brainsam::load_model(options);
    rust::Box<brainsam::Session> session = model->create_session();
    const std::size_t voxel_count = region.GetNumberOfPixels();
    session->set_volume(geometry,
                        rust::Slice<const float>(image->GetBufferPointer(), voxel_count));
    session->segment_all(brainsam::ProgressCallback([](std::uint64_t done, std::uint64_t total) {
      std::cerr << "\rsegmenting: " << done << "/" << total << " slices" << std::flush;
      return true;
    }));
    std::cerr << "\n";

    auto labels = LabelImageType::New();
    labels->SetRegions(region);
    labels->SetSpacing(image->GetSpacing());
    labels->SetOrigin(image->GetOrigin());
    labels->SetDirection(image->GetDirection());
    labels->Allocate();
    session->copy_labels(rust::Slice<std::uint8_t>(labels->GetBufferPointer(), voxel_count));

    auto writer = itk::ImageFileWriter<LabelImageType>::New();
    writer->SetFileName(argv[2]);
    writer->SetInput(labels);
    writer->UseCompressionOn();
    writer->Update();

    for (std::uint32_t structure = 1; structure < BRAINSAM_NUM_CLASSES; structure++) {
      const brainsam::StructureStats stats = session->structure_stats(structure);
      std::cout << structure << "," << stats.voxels << "," << stats.volume_mm3 << "\n";
    }
  } catch (const itk::ExceptionObject& error) {
    std::cerr << "ITK error: " << error.GetDescription() << "\n";
    return 1;
  } catch (const rust::Error& error) {
    std::cerr << "BrainSAM error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
