# The public API (issue 6, docs/embedding.md): src/api, the layer above the store and the
# transports, and what an embedder links and installs: libimgstore.so (only the public API
# exported, by a linker version script), libimgstore.a (every layer in one archive), the headers
# of include/imgstore, a CMake package and imgstore.pc. Included by the root CMakeLists.txt after
# the layers are defined; reuses their (PIC) objects, so nothing is compiled twice.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

imgstore_layer(imgstore_api src/api imgstore_store imgstore_transports)
target_include_directories(imgstore_api PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_compile_definitions(imgstore_api PRIVATE IMGSTORE_VERSION="${PROJECT_VERSION}")

# Every layer, top first (those that exist: the loop above skips empty directories).
set(_api_layers imgstore_api)
foreach(_l store transports registry layers images locking util)
  if(TARGET imgstore_${_l})
    list(APPEND _api_layers imgstore_${_l})
  endif()
endforeach()
# What the layers link besides each other: the static library's users need them too.
set(_api_external_deps Threads::Threads OpenSSL::SSL OpenSSL::Crypto PkgConfig::SQLITE3
  PkgConfig::ZSTD ZLIB::ZLIB PkgConfig::LIBARCHIVE PkgConfig::LIBCURL)
if(ISAL_FOUND)
  list(APPEND _api_external_deps PkgConfig::ISAL)
endif()

set(_api_map ${CMAKE_CURRENT_SOURCE_DIR}/cmake/imgstore.map)
set(_api_objects)
foreach(_t ${_api_layers})
  list(APPEND _api_objects $<TARGET_OBJECTS:${_t}>)
endforeach()
add_library(imgstore_shared SHARED ${_api_objects})
target_link_libraries(imgstore_shared PRIVATE ${_api_external_deps})
target_link_options(imgstore_shared PRIVATE "LINKER:--version-script=${_api_map}"
  "LINKER:--no-undefined")
set_target_properties(imgstore_shared PROPERTIES
  OUTPUT_NAME imgstore EXPORT_NAME imgstore LINK_DEPENDS ${_api_map} LINKER_LANGUAGE CXX
  VERSION ${PROJECT_VERSION} SOVERSION 0)

add_library(imgstore_static STATIC ${_api_objects})
target_link_libraries(imgstore_static INTERFACE ${_api_external_deps})
set_target_properties(imgstore_static PROPERTIES OUTPUT_NAME imgstore EXPORT_NAME imgstore_static)

foreach(_t imgstore_shared imgstore_static)
  target_include_directories(${_t} INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${_t} INTERFACE cxx_std_17)
endforeach()

install(TARGETS imgstore_shared EXPORT imgstoreTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS imgstore_static EXPORT imgstoreStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/imgstore
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(_api_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/imgstore)
install(EXPORT imgstoreTargets NAMESPACE imgstore:: DESTINATION ${_api_cmake_dir})
install(EXPORT imgstoreStaticTargets NAMESPACE imgstore:: DESTINATION ${_api_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/imgstoreConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/imgstoreConfig.cmake INSTALL_DESTINATION ${_api_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/imgstoreConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/imgstoreConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/imgstoreConfigVersion.cmake DESTINATION ${_api_cmake_dir})
file(RELATIVE_PATH _api_pc_to_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
set(_api_pc_isal "")
if(ISAL_FOUND)
  set(_api_pc_isal "libisal ")
endif()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/imgstore.pc.in
  ${CMAKE_CURRENT_BINARY_DIR}/imgstore.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/imgstore.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
