# Packaging: what `cmake --install` gives a runtime that links wcodec through
# the C API (include/wcodec/wcodec.h). Included from the top-level
# CMakeLists.txt once the libraries and the CLI are defined.
#
#   lib/libwcodec.so.X.Y.Z  SONAME libwcodec.so.<major>; exports only wcodec_*
#                           (hidden visibility + cmake/wcodec.map); links zstd,
#                           xxhash, libstdc++ dynamically
#   lib/libwcodec.a         every layer (platform .. lib) in one PIC archive
#   include/wcodec/wcodec.h
#   lib/pkgconfig/wcodec.pc
#   lib/cmake/wcodec/       wcodec::wcodec (shared), wcodec::wcodec_static
#   share/doc/wcodec/LICENSE
#
# Both libraries are made from the objects of the layer libraries (compiled
# once, PIC: CMAKE_POSITION_INDEPENDENT_CODE), so they hold exactly what the
# CLI links.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(WCODEC_LICENSE "Apache-2.0")
set(WCODEC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/wcodec)
set(WCODEC_INSTALL_DOCDIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/wcodec)

# The layer libraries, bottom up (docs/ARCHITECTURE.md).
set(WC_PACKAGED_LAYERS wcodec_platform wcodec_format wcodec_model wcodec_codec wcodec_quant wcodec)

# Hidden visibility for every object that goes into libwcodec.so: only what
# wcodec.h marks WCODEC_API is exported. Static linking ignores visibility,
# so the CLI, tests and tools that link these archives are unaffected.
set_target_properties(${WC_PACKAGED_LAYERS} PROPERTIES
  C_VISIBILITY_PRESET hidden
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)

set(WC_PACKAGED_OBJECTS "")
foreach(layer ${WC_PACKAGED_LAYERS})
  list(APPEND WC_PACKAGED_OBJECTS $<TARGET_OBJECTS:${layer}>)
endforeach()

# Both outputs are called libwcodec; keep them apart from the build's own
# libwcodec.a (the `wcodec` layer library) in their own folder.
set(WC_PACKAGE_OUT ${PROJECT_BINARY_DIR}/package)

# --- libwcodec.so --------------------------------------------------------------
add_library(wcodec_shared SHARED ${WC_PACKAGED_OBJECTS})
set_target_properties(wcodec_shared PROPERTIES
  OUTPUT_NAME wcodec
  EXPORT_NAME wcodec
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  LINKER_LANGUAGE CXX
  LIBRARY_OUTPUT_DIRECTORY ${WC_PACKAGE_OUT}
  WCODEC_LICENSE ${WCODEC_LICENSE}
  EXPORT_PROPERTIES WCODEC_LICENSE)
target_include_directories(wcodec_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(wcodec_shared PRIVATE PkgConfig::ZSTD ${XXHASH_LIBRARY} Threads::Threads)
if(UNIX AND NOT APPLE)
  set(WC_VERSION_SCRIPT ${PROJECT_SOURCE_DIR}/cmake/wcodec.map)
  target_link_options(wcodec_shared PRIVATE "LINKER:--version-script=${WC_VERSION_SCRIPT}")
  set_property(TARGET wcodec_shared APPEND PROPERTY LINK_DEPENDS ${WC_VERSION_SCRIPT})
  # Every symbol resolved at link time. Not under sanitizers: clang links
  # their runtimes into executables only, leaving a shared library's
  # references to them undefined on purpose.
  if(NOT WCODEC_SANITIZE AND NOT "${CMAKE_CXX_FLAGS} ${CMAKE_SHARED_LINKER_FLAGS}" MATCHES "-fsanitize")
    target_link_options(wcodec_shared PRIVATE "LINKER:--no-undefined")
  endif()
endif()

# --- libwcodec.a ---------------------------------------------------------------
add_library(wcodec_static STATIC ${WC_PACKAGED_OBJECTS})
set_target_properties(wcodec_static PROPERTIES
  OUTPUT_NAME wcodec
  EXPORT_NAME wcodec_static
  LINKER_LANGUAGE CXX
  ARCHIVE_OUTPUT_DIRECTORY ${WC_PACKAGE_OUT}
  WCODEC_LICENSE ${WCODEC_LICENSE}
  EXPORT_PROPERTIES WCODEC_LICENSE)
target_include_directories(wcodec_static INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# Installed, the dependencies come from wcodecConfig.cmake (wcodec::_static_deps:
# zstd, xxhash, Threads, libstdc++, libm), found on the consumer's machine.
target_link_libraries(wcodec_static INTERFACE
  $<BUILD_INTERFACE:PkgConfig::ZSTD>
  $<BUILD_INTERFACE:${XXHASH_LIBRARY}>
  $<BUILD_INTERFACE:Threads::Threads>
  $<INSTALL_INTERFACE:wcodec::_static_deps>)

# --- install -------------------------------------------------------------------
install(TARGETS wcodec_shared wcodec_static EXPORT wcodecTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/wcodec/wcodec.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/wcodec)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${WCODEC_INSTALL_DOCDIR})

# pkg-config: relocatable (prefix relative to the .pc file, unless the library
# folder is absolute), so the prefix given to `cmake --install --prefix` need
# not be known when configuring.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(WCODEC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(WCODEC_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH WC_PC_UP /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
  string(REGEX REPLACE "/$" "" WC_PC_UP "${WC_PC_UP}")
  set(WCODEC_PC_PREFIX "\${pcfiledir}/${WC_PC_UP}")
  set(WCODEC_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(WCODEC_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(WCODEC_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/wcodec.pc.in ${WC_PACKAGE_OUT}/wcodec.pc @ONLY)
install(FILES ${WC_PACKAGE_OUT}/wcodec.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package.
install(EXPORT wcodecTargets NAMESPACE wcodec:: DESTINATION ${WCODEC_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/wcodecConfig.cmake.in
  ${WC_PACKAGE_OUT}/wcodecConfig.cmake
  INSTALL_DESTINATION ${WCODEC_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR WCODEC_INSTALL_DOCDIR)
# 0.x: the same major version (the SONAME) is compatible, as for the library.
write_basic_package_version_file(${WC_PACKAGE_OUT}/wcodecConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${WC_PACKAGE_OUT}/wcodecConfig.cmake ${WC_PACKAGE_OUT}/wcodecConfigVersion.cmake
  DESTINATION ${WCODEC_INSTALL_CMAKEDIR})
