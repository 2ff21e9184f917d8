process GHGA_DOWNLOAD {
    tag "${meta.id}"
    label 'process_low'
    // The download token, as the GHGA Data Portal shows it: `nextflow secrets set GHGA_DOWNLOAD_TOKEN '<token>'`
    secret 'GHGA_DOWNLOAD_TOKEN'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), val(accessions)
    tuple path(private_key), path(public_key)

    output:
    tuple val(meta), path("${prefix}/*"), emit: files
    tuple val("${task.process}"), val('ghga-transfer'), eval("ghga-transfer --version | sed 's/^ghga-transfer //'"), topic: versions, emit: versions_ghga_transfer

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def ids = accessions instanceof List ? accessions.join(' ') : accessions
    """
    export GHGA_WORK_PACKAGE_TOKEN="\$GHGA_DOWNLOAD_TOKEN"
    ghga-transfer download \\
        --output-dir ${prefix} \\
        --my-private-key ${private_key} \\
        --my-public-key ${public_key} \\
        ${args} \\
        ${ids}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    def ids = accessions instanceof List ? accessions.join(' ') : accessions
    """
    mkdir -p ${prefix}
    for accession in ${ids}; do
        touch ${prefix}/\$accession
    done
    """
}
